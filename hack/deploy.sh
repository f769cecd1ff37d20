#!/usr/bin/env bash
# Installs Marina into the current cluster: the CRDs, MinIO with its root credentials Secret in marina-system
# (hack/minio-up.sh), the workload namespaces (created when missing) and the operator; then waits for it.
# MinIO's root credentials never leave marina-system: the operator gives each namespace that holds Marina
# resources its own MinIO identity, reaching only that namespace's storage area, and writes it into the
# namespace's Secret marina-s3-credentials (replacing the root copy earlier versions of this script made).
# KUBECONFIG defaults to the local cluster's .cluster/kubeconfig when unset.
# Usage: hack/deploy.sh [NAMESPACE ...]   workload namespaces (default: $MARINA_NAMESPACES, else "default")
set -euo pipefail
HACK="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HACK/.." && pwd)"
if [[ -z ${KUBECONFIG:-} && -f $ROOT/.cluster/kubeconfig ]]; then export KUBECONFIG=$ROOT/.cluster/kubeconfig; fi
SYSTEM=marina-system
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

for namespace in "${NAMESPACES[@]}"; do
  [[ $namespace == "$SYSTEM" ]] && continue
  k get namespace "$namespace" >/dev/null 2>&1 || { log "namespace $namespace"; k create namespace "$namespace" >/dev/null; }
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
