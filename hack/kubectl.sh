#!/usr/bin/env bash
# kubectl for scripts: the one on PATH, else the pinned build from the cache; KUBECONFIG defaults to the local
# cluster's (.cluster/kubeconfig) when unset. Usage: hack/kubectl.sh get pods -A
set -euo pipefail
HACK="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=hack/lib/cluster.sh
source "$HACK/lib/cluster.sh"
export KUBECONFIG="${KUBECONFIG:-$KUBECONFIG_PATH}"
if command -v kubectl >/dev/null; then exec kubectl "$@"; fi
[[ -x $KUBE_BIN/kubectl ]] || bash "$HACK/build-binaries.sh" kube >&2
exec "$KUBE_BIN/kubectl" "$@"
