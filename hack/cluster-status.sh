#!/usr/bin/env bash
# Shows which parts of the local cluster run, the node and the pods. Exit status 0 only when all run.
set -uo pipefail
HACK="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=hack/lib/cluster.sh
source "$HACK/lib/cluster.sh"

missing=0
for c in "${COMPONENTS[@]}"; do
  if pid=$(pid_of "$c"); then
    printf '  %-24s running (pid %s)\n' "$c" "$pid"
  else
    printf '  %-24s not running\n' "$c"
    missing=1
  fi
done
if ((missing == 0)); then
  kubectl_local get nodes -o wide
  kubectl_local get pods -A -o wide
  echo "export KUBECONFIG=$KUBECONFIG_PATH PATH=$CLUSTER_DIR/bin:\$PATH"
fi
echo "logs: $LOG_DIR"
exit "$missing"
