"""BatchPrediction: a table scored with a model by `marina predict` Jobs (an Indexed Job of shards and a
last step writing the manifest, with parallelism), once per spec, model and data.

`spec` (typed, from the contract), `manifests` (the Jobs, pure), `reconcile` (observe, decide, act),
`handlers` (kopf, and the models and data it follows). May import `controller.shared`, `controller.kube`
and below; never another kind.
"""
