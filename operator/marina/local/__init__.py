"""`marina run`: the same YAML on one machine, with no cluster and no MinIO.

`documents` reads what users `kubectl apply`; `api` is an in-memory Kubernetes API the controller's own
reconcilers run against; `workloads` does what a cluster does with their children (Jobs run as local
processes of the same commands, Deployments served by `marina serve` on loopback); `table` prints the
resources as `kubectl get marina` does; `run` is the command. May import `marina.controller` and below.
"""
