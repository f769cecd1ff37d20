"""Marina's Kubernetes operator: Dataset, TrainingJob and ModelDeployment reconciled with kopf.

Layers, top down: `handlers` (thin kopf registrations) and `command` (`marina operator`); one folder per
kind (`datasets`, `trainingjobs`, `modeldeployments`: typed spec, manifests, reconcile); `shared`, what
the kinds' reconcilers are built from (conditions, spec fields, Job results, ownership, credentials,
retention); `kube`, the operator process's machinery (the one API client, settings, leadership, the
background loop, metrics, health). A kind never imports another kind.
"""
