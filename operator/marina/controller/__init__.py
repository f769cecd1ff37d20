"""Marina's Kubernetes operator: Dataset, TrainingJob and ModelDeployment reconciled with kopf.

Layers: `handlers` (thin kopf registrations) call the per-kind reconcilers (`datasets`,
`trainingjobs`, `modeldeployments`), which parse typed specs (`*_spec`), build manifests with pure
functions (`builders`), compute status (`conditions`, `termination`) and talk to the API only
through `kube`.
"""
