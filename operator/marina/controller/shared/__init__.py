"""What every kind is built from: observing, deciding and acting (`observation`, `plan`, `reconciler`),
status conditions and outcomes, typed spec fields, Jobs run to a typed result, child ownership, storage
credentials and areas, retention and the deletion of sharded runs' partials, common manifests, and the
kopf glue (`runtime`, `registration`).

May import `controller.kube`; never a kind.
"""
