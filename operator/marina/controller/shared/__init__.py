"""What every kind's reconciler is built from: status conditions and outcomes, typed spec fields, Jobs
run to a typed result, child ownership, storage credentials and areas, retention, common manifests.

May import `controller.kube`; never a kind.
"""
