#!/usr/bin/env bash
# Runs MinIO in the current cluster (KUBECONFIG, default .cluster/kubeconfig) from manifests/minio and waits
# until it is ready. MinIO erasure-codes every object over four drives, one volume each (PVCs minio-drive-0 ...
# -3): one drive's data lost loses nothing and MinIO heals it. On a cluster without a default StorageClass (the
# local one) they are the hostPath volumes of manifests/minio/local-volume, whose folders live in the local
# cluster's state ($VOLUMES_DIR/minio-drive-N) and outlive cluster-down.
#
# The single volume of earlier versions cannot become one of four drives. On the local cluster
# ($VOLUMES_DIR/minio-data) hack/minio-migrate.sh copies its objects into the four drives once MinIO is ready,
# then keeps it renamed until PURGE=1; elsewhere (PVC minio-data) it is left as it is, unused, and a line says
# so (docs/operations.md, "MinIO's drives", tells how to copy it over or delete it).
#
# MinIO's root credentials are the Secret marina-s3-credentials in marina-system (never printed). MinIO
# encrypts its IAM data (the namespaces' identities) with them, so kept data is only readable with the same
# ones: on the local cluster they are also kept in a root-only file next to the volume
# ($VOLUMES_DIR/minio-root-credentials, mode 0600). The Secret, when present, is what MinIO runs with and is
# written to the file; when absent (a new cluster over a kept volume) it is created from the file; only when
# neither exists are new random credentials made.
set -euo pipefail
HACK="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=hack/lib/cluster.sh
source "$HACK/lib/cluster.sh"
NAMESPACE=marina-system
SECRET=marina-s3-credentials
k() { bash "$HACK/kubectl.sh" "$@"; }

# create_secret ACCESS SECRET_KEY: through stdin, so the values never appear in a process list or a log;
# `create` so that of two concurrent runs only the first one's credentials are ever stored.
create_secret() {
  k create -f - >/dev/null 2>&1 <<SECRET || k -n "$NAMESPACE" get secret "$SECRET" >/dev/null
apiVersion: v1
kind: Secret
metadata: {name: $SECRET, namespace: $NAMESPACE}
type: Opaque
stringData:
  AWS_ACCESS_KEY_ID: $1
  AWS_SECRET_ACCESS_KEY: $2
SECRET
}

secret_value() {
  k -n "$NAMESPACE" get secret "$SECRET" -o "jsonpath={.data.$1}" | base64 -d
}

# keep_credentials FILE: the Secret's credentials into FILE (mode 0600, replaced atomically) unless it holds them.
keep_credentials() {
  local file=$1 access secret_key
  access=$(secret_value AWS_ACCESS_KEY_ID)
  secret_key=$(secret_value AWS_SECRET_ACCESS_KEY)
  [[ -n $access && -n $secret_key ]] || die "Secret $NAMESPACE/$SECRET lacks AWS_ACCESS_KEY_ID or AWS_SECRET_ACCESS_KEY"
  if [[ -f $file ]] && [[ $(<"$file") == "AWS_ACCESS_KEY_ID=$access"$'\n'"AWS_SECRET_ACCESS_KEY=$secret_key" ]]; then
    return 0
  fi
  [[ -f $file ]] && log "the Secret's credentials differ from $file: keeping the Secret's (MinIO runs with them)"
  (umask 077 && printf 'AWS_ACCESS_KEY_ID=%s\nAWS_SECRET_ACCESS_KEY=%s\n' "$access" "$secret_key" >"$file.tmp")
  chmod 0600 "$file.tmp" && mv -f "$file.tmp" "$file"
}

# ensure_root_secret [FILE]: the Secret exists afterwards, from FILE when it is absent and FILE is there.
ensure_root_secret() {
  local file=${1:-} access='' secret_key=''
  if ! k -n "$NAMESPACE" get secret "$SECRET" >/dev/null 2>&1; then
    if [[ -n $file && -s $file ]]; then
      read_kept_credentials "$file"
      access=$KEPT_ACCESS secret_key=$KEPT_SECRET_KEY
      log "creating Secret $NAMESPACE/$SECRET from the kept credentials of MinIO's volume ($file)"
    else
      log "creating Secret $NAMESPACE/$SECRET with random credentials"
      access=marina-$(openssl rand -hex 6)
      secret_key=$(openssl rand -hex 24)
    fi
    create_secret "$access" "$secret_key"
  fi
  [[ -z $file ]] || keep_credentials "$file"
}

k apply -f "$MARINA_ROOT/manifests/minio/base/namespace.yaml" >/dev/null
overlay=$MARINA_ROOT/manifests/minio
credentials_file=''
default_class=$(k get storageclass -o \
  jsonpath='{.items[?(@.metadata.annotations.storageclass\.kubernetes\.io/is-default-class=="true")].metadata.name}')
if [[ -z $default_class ]]; then
  mapfile -t drives < <(sed -n 's/^ *path: //p' "$overlay/local-volume/persistentvolume.yaml")
  server=$(k config view --minify -o jsonpath='{.clusters[0].cluster.server}')
  [[ $server == "https://$NODE_IP:$API_PORT" && $EUID -eq 0 ]] \
    || die "no default StorageClass in this cluster and it is not the local one: create PVs for $NAMESPACE/minio-drive-0 ... -3"
  install -d -o root -g root -m 0700 "$VOLUMES_DIR"
  for drive in "${drives[@]}"; do
    [[ $(dirname "$drive") == "$VOLUMES_DIR" ]] || die "$overlay/local-volume puts MinIO's drive $drive outside $VOLUMES_DIR"
    install -d -o 65532 -g 65532 -m 0750 "$drive"
  done
  credentials_file=$MINIO_CREDENTIALS_FILE
  overlay=$overlay/local-volume
elif k -n "$NAMESPACE" get pvc minio-data >/dev/null 2>&1; then
  log "MinIO now erasure-codes over four drives (PVCs minio-drive-N); the single volume of an earlier version," \
    "PVC $NAMESPACE/minio-data, cannot become one of them: kept as it is, its datasets and models are NOT served" \
    "(docs/operations.md, \"MinIO's drives\", tells how to copy them over; PURGE=1 make undeploy deletes it)"
fi
ensure_root_secret "$credentials_file"
log "applying $overlay"
k apply -k "$overlay" >/dev/null
k -n "$NAMESPACE" rollout status deployment/minio --timeout=300s >/dev/null \
  || { k -n "$NAMESPACE" describe pods -l app.kubernetes.io/name=minio | tail -n 30 >&2; die "MinIO did not become ready"; }
log "MinIO ready: http://minio.$NAMESPACE.svc.$CLUSTER_DOMAIN:9000 ($(k -n "$NAMESPACE" get svc minio -o jsonpath='{.spec.clusterIP}'):9000)"
if [[ -n $credentials_file && -f $VOLUMES_DIR/minio-data/.minio.sys/format.json ]]; then
  log "MinIO now erasure-codes over four drives ($VOLUMES_DIR/minio-drive-N); the single volume of an earlier" \
    "version, $VOLUMES_DIR/minio-data, cannot become one of them: copying its objects in (hack/minio-migrate.sh)"
  bash "$HACK/minio-migrate.sh"
elif [[ -n $credentials_file && -d $VOLUMES_DIR/minio-data ]]; then
  log "$VOLUMES_DIR/minio-data, the single volume of an earlier version, holds no MinIO data: left as it is"
fi
