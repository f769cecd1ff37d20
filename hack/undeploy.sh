#!/usr/bin/env bash
# Removes Marina from the current cluster: its resources (their Jobs, Deployments and Services go with
# them), the operator, the CRDs and MinIO's server. Stored datasets and models stay: MinIO's volume
# (PVC and data, with the namespaces' MinIO identities), its namespace and the credentials Secrets (the root one
# in marina-system, each namespace's scoped one) are kept, so a later deploy finds them again.
set -euo pipefail
HACK="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HACK/.." && pwd)"
if [[ -z ${KUBECONFIG:-} && -f $ROOT/.cluster/kubeconfig ]]; then export KUBECONFIG=$ROOT/.cluster/kubeconfig; fi
k() { bash "$HACK/kubectl.sh" "$@"; }
log() { printf '[undeploy] %s\n' "$*" >&2; }

if k get crd datasets.marina.dev >/dev/null 2>&1; then
  log "Marina resources in every namespace (children are garbage-collected with them)"
  available=$(k -n marina-system get deployment marina-operator -o jsonpath='{.status.availableReplicas}' 2>/dev/null || true)
  k delete modeldeployments,trainingjobs,datasets --all --all-namespaces --wait=true \
    --timeout="$([[ ${available:-0} -gt 0 ]] && echo 60s || echo 5s)" >/dev/null 2>&1 || true
  # Without a running operator nobody removes Marina's finalizer; drop it so nothing hangs.
  for kind in modeldeployments trainingjobs datasets; do
    k get "$kind" --all-namespaces -o jsonpath='{range .items[*]}{.metadata.namespace} {.metadata.name}{"\n"}{end}' |
      while read -r namespace name; do
        [[ -n $name ]] || continue
        log "removing the finalizer of $kind $namespace/$name (no operator answered)"
        k -n "$namespace" patch "$kind" "$name" --type=merge -p '{"metadata":{"finalizers":null}}' >/dev/null || true
      done
  done
fi
log "operator"
k delete -k "$ROOT/manifests/operator" --ignore-not-found --wait=true >/dev/null || true
log "CRDs"
k delete -k "$ROOT/crds" --ignore-not-found >/dev/null || true
log "MinIO server (its volume and data stay)"
k -n marina-system delete deployment/minio service/minio --ignore-not-found >/dev/null || true
log "done"
