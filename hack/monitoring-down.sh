#!/usr/bin/env bash
# Stops the local Prometheus by its PID file (run by cluster-down; metrics-server is a pod and goes with
# the cluster). Idempotent.
set -euo pipefail
HACK="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=hack/lib/cluster.sh
source "$HACK/lib/cluster.sh"
# shellcheck source=hack/lib/monitoring.sh
source "$HACK/lib/monitoring.sh"
stop_prometheus
