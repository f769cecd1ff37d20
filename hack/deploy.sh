#!/usr/bin/env bash
# Installs Marina into the current cluster: the CRDs, MinIO with its credentials Secret (hack/minio-up.sh),
# that Secret copied into each workload namespace, and the operator; then waits for the operator.
# KUBECONFIG defaults to the local cluster's .cluster/kubeconfig when unset.
# Usage: hack/deploy.sh [NAMESPACE ...]   workload namespaces (default: $MARINA_NAMESPACES, else "default")
set -euo pipefail
HACK="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HACK/.." && pwd)"
if [[ -z ${KUBECONFIG:-} && -f $ROOT/.cluster/kubeconfig ]]; then export KUBECONFIG=$ROOT/.cluster/kubeconfig; fi
SYSTEM=marina-system
SECRET=${MARINA_S3_SECRET:-marina-s3-credentials}
read -r -a NAMESPACES <<<"${*:-${MARINA_NAMESPACES:-default}}"
k() { bash "$HACK/kubectl.sh" "$@"; }
log() { printf '[deploy] %s\n' "$*" >&2; }
die() { printf '[deploy] error: %s\n' "$*" >&2; exit 1; }

k version >/dev/null 2>&1 || die "no cluster reachable (KUBECONFIG=${KUBECONFIG:-unset}); run 'make cluster-up' first"

log "CRDs"
k apply --server-side --force-conflicts -k "$ROOT/crds" >/dev/null
k wait --for=condition=Established --timeout=60s \
  crd/datasets.marina.dev crd/trainingjobs.marina.dev crd/modeldeployments.marina.dev >/dev/null

log "MinIO"
bash "$HACK/minio-up.sh"

# The credentials travel from marina-system to each workload namespace through a pipe: never printed.
copy_secret() {
  local namespace=$1
  k get namespace "$namespace" >/dev/null 2>&1 || k create namespace "$namespace" >/dev/null
  k -n "$SYSTEM" get secret "$SECRET" -o json | python3 -c '
import json, sys
secret = json.load(sys.stdin)
print(json.dumps({"apiVersion": "v1", "kind": "Secret", "type": secret.get("type", "Opaque"),
                  "metadata": {"name": secret["metadata"]["name"], "namespace": sys.argv[1],
                               "labels": {"app.kubernetes.io/part-of": "marina"}},
                  "data": secret["data"]}))' "$namespace" | k apply -f - >/dev/null
}
for namespace in "${NAMESPACES[@]}"; do
  [[ $namespace == "$SYSTEM" ]] && continue
  log "Secret $SECRET in namespace $namespace"
  copy_secret "$namespace"
done

log "operator"
k apply -k "$ROOT/manifests/operator" >/dev/null
# Pick up a rebuilt marina:dev (same tag) on every deploy.
k -n "$SYSTEM" rollout restart deployment/marina-operator >/dev/null
k -n "$SYSTEM" rollout status deployment/marina-operator --timeout=180s >/dev/null || {
  k -n "$SYSTEM" logs deployment/marina-operator --tail=30 >&2 || true
  die "the operator did not become ready"
}
log "ready: kubectl apply -k manifests/samples, then kubectl get marina"
