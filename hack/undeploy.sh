#!/usr/bin/env bash
# Removes Marina from the current cluster: its resources (their Jobs, Deployments and Services go with
# them), the operator, the CRDs and MinIO's server. Stored datasets and models stay: MinIO's four drives
# (PVCs and data, with the namespaces' MinIO identities), its namespace and the credentials Secrets (the root one
# in marina-system, each namespace's scoped one) are kept, so a later deploy finds them again.
# PURGE=1 also deletes MinIO's data: its PVCs (and the local cluster's PVs, hostPath folders and kept root
# credentials file), the single volume of earlier versions where one is left, and the root credentials Secret,
# so the next deploy starts with an empty store.
set -euo pipefail
HACK="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HACK/.." && pwd)"
# shellcheck source=hack/lib/cluster.sh
source "$HACK/lib/cluster.sh"  # VOLUMES_DIR: where the local cluster keeps MinIO's drives
PURGE=${PURGE:-0}
[[ $PURGE == 0 || $PURGE == 1 ]] || { printf '[undeploy] error: PURGE must be 0 or 1, got %s\n' "$PURGE" >&2; exit 1; }
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
if [[ $PURGE != 1 ]]; then
  log "MinIO server (its drives and data stay; PURGE=1 deletes them)"
  k -n marina-system delete deployment/minio service/minio --ignore-not-found >/dev/null || true
  log "done"
  exit 0
fi

# purge_local_volume PATH: one of the local cluster's hostPath folders.
purge_local_volume() {
  local path=$1
  [[ $(dirname "$path") == "$VOLUMES_DIR" ]] || { log "MinIO's folder $path is not ours: left as it is"; return 0; }
  ((EUID == 0)) || { log "error: deleting $path needs root (run as root, or delete it by hand)"; exit 1; }
  rm -rf "$path"
  log "deleted $path"
}

log "PURGE=1: MinIO's server, then its stored data"
k -n marina-system delete deployment/minio service/minio --ignore-not-found --wait=true >/dev/null || true
k -n marina-system wait --for=delete pod -l app.kubernetes.io/name=minio --timeout=120s >/dev/null 2>&1 || true
local_cluster=$([[ $(k config view --minify -o jsonpath='{.clusters[0].cluster.server}') == "https://$NODE_IP:$API_PORT" ]] \
  && echo 1 || echo 0)
# Its four drives, and the single volume of earlier versions (minio-data) where one is left.
for claim in minio-drive-0 minio-drive-1 minio-drive-2 minio-drive-3 minio-data; do
  volume=marina-$claim
  host_path=$(k get pv "$volume" -o jsonpath='{.spec.hostPath.path}' 2>/dev/null || true)
  k -n marina-system delete pvc "$claim" --ignore-not-found --wait=true >/dev/null || true
  k delete pv "$volume" --ignore-not-found --wait=true >/dev/null || true
  if [[ -n $host_path ]]; then
    purge_local_volume "$host_path"
  elif [[ $local_cluster == 1 && -d $VOLUMES_DIR/$claim ]]; then  # no PV: a new cluster over a kept folder
    purge_local_volume "$VOLUMES_DIR/$claim"
  fi
done
if [[ $local_cluster == 1 ]]; then
  for kept in "$VOLUMES_DIR"/minio-data.migrated-*; do  # hack/minio-migrate.sh's copied single volumes
    [[ -d $kept ]] && purge_local_volume "$kept"
  done
  rm -f "$MINIO_CREDENTIALS_FILE" "$MINIO_CREDENTIALS_FILE.tmp"
  log "deleted the root credentials kept in $VOLUMES_DIR"
fi
k -n marina-system delete secret marina-s3-credentials --ignore-not-found >/dev/null || true
log "done: MinIO's data and root credentials are gone (namespaces' Secrets stay; the operator re-creates their identities)"
