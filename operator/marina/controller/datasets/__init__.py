"""Dataset: a preparation Job per distinct input; its typed result becomes the status.

`spec` (typed, from the contract), `manifests` (the Job and its inline rows, pure), `reconcile` (observe,
decide, act), `handlers` (kopf). May import `controller.shared`, `controller.kube` and below; never another
kind.
"""
