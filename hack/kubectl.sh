#!/usr/bin/env bash
# kubectl for scripts: the pinned build from the cache when there is one (the cluster's own release), else the
# one on PATH, else the pinned build, built; KUBECONFIG defaults to the local cluster's (.cluster/kubeconfig)
# when unset. Usage: hack/kubectl.sh get pods -A
# (The cached build first: a kubectl on PATH may be a dispatcher that starts another kubectl per call, such as
# the Google Cloud SDK's, at twice the CPU per call; the tests call kubectl thousands of times.)
set -euo pipefail
HACK="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=hack/lib/cluster.sh
source "$HACK/lib/cluster.sh"
export KUBECONFIG="${KUBECONFIG:-$KUBECONFIG_PATH}"
[[ -x $KUBE_BIN/kubectl ]] && exec "$KUBE_BIN/kubectl" "$@"
if command -v kubectl >/dev/null; then exec kubectl "$@"; fi
bash "$HACK/build-binaries.sh" kube >&2
exec "$KUBE_BIN/kubectl" "$@"
