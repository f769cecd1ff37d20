#!/usr/bin/env bash
# Removes Marina from the current cluster: its resources (their Jobs, Deployments and Services go with
# them), the operator, the CRDs and MinIO's server. Stored datasets and models stay: MinIO's volume
# (PVC and data), its namespace and the credentials Secrets are kept, so a later deploy finds them again.
set -euo pipefail
HACK="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HACK/.." && pwd)"
if [[ -z ${KUBECONFIG:-} && -f $ROOT/.cluster/kubeconfig ]]; then export KUBECONFIG=$ROOT/.cluster/kubeconfig; fi
k() { bash "$HACK/kubectl.sh" "$@"; }
log() { printf '[undeploy] %s\n' "$*" >&2; }

if k get crd datasets.marina.dev >/dev/null 2>&1; then
  log "Marina resources in every namespace (children are garbage-collected with them)"
  k delete modeldeployments,trainingjobs,datasets --all --all-namespaces --wait=true --timeout=120s >/dev/null || true
fi
log "operator"
k delete -k "$ROOT/manifests/operator" --ignore-not-found --wait=true >/dev/null || true
log "CRDs"
k delete -k "$ROOT/crds" --ignore-not-found >/dev/null || true
log "MinIO server (its volume and data stay)"
k -n marina-system delete deployment/minio service/minio --ignore-not-found >/dev/null || true
log "done"
