"""Marina's Kubernetes operator: Dataset, TrainingJob and ModelDeployment reconciled with kopf.

Layers, top down: `handlers` (kopf's settings, the background loop, the probe, children's events; it
composes each kind's own registrations) and `command` (`marina operator`); one folder per kind
(`datasets`, `trainingjobs`, `modeldeployments`: typed spec, manifests, reconcile, handlers); `shared`,
what the kinds are built from (observe, decide, act: `observation`, `plan`, `reconciler`; conditions,
spec fields, Jobs, ownership, credentials, retention, common manifests, the kopf glue); `kube`, the
operator process's machinery (the one API client, settings, leadership, the background loop, metrics,
health). A kind never imports another kind, and no layer imports one above it.

Each reconcile reads what it needs at most once, decides as a pure function of that (`decide`, which
returns a `plan.Plan`), and only then writes (`plan.act`).
"""
