"""ModelDeployment: a Deployment, a Service and an optional HPA serving one model (`reconcile`, with its
`children`); the promotion gate (`promotion`), canary rollouts (`canary`, `rollout`), and the monitoring
loop's ticks (`monitor`): drift checks (`drift`, `monitoring`, `collector`) and retraining (`retrain`,
`retraining`). `spec` and `manifests` as in every kind.

May import `controller.shared`, `controller.kube` and below; never another kind.
"""
