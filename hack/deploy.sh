#!/usr/bin/env bash
# Installs Marina into the current cluster: the CRDs, MinIO with its root credentials Secret in marina-system
# (hack/minio-up.sh), the workload namespaces (created when missing) and the operator; then waits for it.
# MinIO's root credentials never leave marina-system: the operator gives each namespace that holds Marina
# resources its own MinIO identity, reaching only that namespace's storage area, and writes it into the
# namespace's Secret marina-s3-credentials (replacing the root copy earlier versions of this script made).
# KUBECONFIG defaults to the local cluster's .cluster/kubeconfig when unset.
# Usage: hack/deploy.sh [NAMESPACE ...]   workload namespaces (default: $MARINA_NAMESPACES, else "default")
# NetworkPolicies (manifests/network): MinIO answers only Marina's pods and the operator; in each workload
# namespace, Marina's Jobs reach only MinIO and DNS and model servers take connections on their port only.
# MARINA_INSTALL=namespaced: the namespace-scoped install (manifests/operator-namespaced): the operator watches
# and holds rights in the workload namespaces only (default MARINA_INSTALL=cluster: every namespace).
# MARINA_OPERATOR_MANIFESTS: the kustomization of the cluster-wide install (default manifests/operator; the e2e
# tests pass tests/e2e/operator, the same with shorter waits).
set -euo pipefail
HACK="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HACK/.." && pwd)"
if [[ -z ${KUBECONFIG:-} && -f $ROOT/.cluster/kubeconfig ]]; then export KUBECONFIG=$ROOT/.cluster/kubeconfig; fi
SYSTEM=marina-system
read -r -a NAMESPACES <<<"${*:-${MARINA_NAMESPACES:-default}}"
INSTALL=${MARINA_INSTALL:-cluster}
OPERATOR_MANIFESTS=${MARINA_OPERATOR_MANIFESTS:-$ROOT/manifests/operator}
[[ $INSTALL == cluster || $INSTALL == namespaced ]] || { echo "MARINA_INSTALL must be cluster or namespaced" >&2; exit 2; }
k() { bash "$HACK/kubectl.sh" "$@"; }
log() { printf '[deploy] %s\n' "$*" >&2; }
die() { printf '[deploy] error: %s\n' "$*" >&2; exit 1; }

# apply_unless_foreign NAMESPACE KUSTOMIZATION: applies a per-namespace kustomization (no namespace of its own)
# into NAMESPACE, leaving alone any object of the same name that is not Marina's (no part-of=marina label).
apply_unless_foreign() {
  local namespace=$1 dir=$2 object part_of
  for object in $(k kustomize "$dir" | k -n "$namespace" create --dry-run=client -f - -o name); do
    part_of=$(k -n "$namespace" get "$object" --ignore-not-found \
      -o jsonpath='{.metadata.labels.app\.kubernetes\.io/part-of}{"+"}')
    [[ -z $part_of || $part_of == marina+ ]] || die "$namespace has a $object that is not Marina's: remove or rename it"
  done
  k -n "$namespace" apply -k "$dir" >/dev/null
}

k version >/dev/null 2>&1 || die "no cluster reachable (KUBECONFIG=${KUBECONFIG:-unset}); run 'make cluster-up' first"

log "CRDs"
k apply --server-side --force-conflicts -k "$ROOT/crds" >/dev/null
k wait --for=condition=Established --timeout=60s \
  crd/datasets.marina.dev crd/trainingjobs.marina.dev crd/modeldeployments.marina.dev \
  crd/kopfpeerings.kopf.dev >/dev/null

log "MinIO"
bash "$HACK/minio-up.sh"

for namespace in "${NAMESPACES[@]}"; do
  [[ $namespace == "$SYSTEM" ]] && continue
  k get namespace "$namespace" >/dev/null 2>&1 || { log "namespace $namespace"; k create namespace "$namespace" >/dev/null; }
done

log "NetworkPolicies"
k apply -k "$ROOT/manifests/network" >/dev/null
for namespace in "${NAMESPACES[@]}"; do
  [[ $namespace == "$SYSTEM" ]] || apply_unless_foreign "$namespace" "$ROOT/manifests/network/workload"
done

if [[ $INSTALL == namespaced ]]; then
  log "operator (namespace-scoped: ${NAMESPACES[*]})"
  watched=$(IFS=,; echo "${NAMESPACES[*]}")
  k -n "$SYSTEM" create configmap marina-operator-namespaces --from-literal="namespaces=$watched" \
    --dry-run=client -o yaml | k apply -f - >/dev/null
  for namespace in "${NAMESPACES[@]}"; do
    apply_unless_foreign "$namespace" "$ROOT/manifests/operator-namespaced/namespace"
  done
  k apply -k "$ROOT/manifests/operator-namespaced" >/dev/null
  # A cluster-wide install before this one: its rights go (only Marina's own objects, by their label).
  k delete clusterrolebinding,clusterrole -l app.kubernetes.io/name=marina-operator --ignore-not-found >/dev/null
else
  log "operator ($OPERATOR_MANIFESTS)"
  k apply -k "$OPERATOR_MANIFESTS" >/dev/null
fi
# Pick up a rebuilt marina.local/marina:dev (same tag) on every deploy.
k -n "$SYSTEM" rollout restart deployment/marina-operator >/dev/null
k -n "$SYSTEM" rollout status deployment/marina-operator --timeout=180s >/dev/null || {
  k -n "$SYSTEM" logs deployment/marina-operator --tail=30 >&2 || true
  die "the operator did not become ready"
}
log "ready: kubectl apply -k manifests/samples, then kubectl get marina"
