"""TrainingJob: a training Job (or an Indexed Job of shards and a reduce) per spec and dataset version.

`spec` (typed, from the contract), `manifests` (the Jobs, pure), `reconcile` (observe, decide, act),
`handlers` (kopf). May import `controller.shared`, `controller.kube` and below; never another kind.
"""
