"""Each kind's reconcile function, in the order the kinds follow each other (a Dataset before the
TrainingJobs that train on it, before the ModelDeployments that serve their models): for the operator's
handlers and for `marina run`, which reconciles without kopf."""

from __future__ import annotations

from marina.controller.batchpredictions import reconcile as batchpredictions
from marina.controller.datasets import reconcile as datasets
from marina.controller.modeldeployments import reconcile as modeldeployments
from marina.controller.shared.reconciler import Reconcile
from marina.controller.trainingjobs import reconcile as trainingjobs

RECONCILERS: dict[str, Reconcile] = {
    datasets.KIND: datasets.reconcile,
    trainingjobs.KIND: trainingjobs.reconcile,
    modeldeployments.KIND: modeldeployments.reconcile,
    batchpredictions.KIND: batchpredictions.reconcile,
}
