#!/usr/bin/env bash
# Runs MinIO in the current cluster (KUBECONFIG, default .cluster/kubeconfig) from manifests/minio and waits
# until it is ready. Creates the Secret marina-s3-credentials in marina-system with random credentials when
# it is absent (never printed). On a cluster without a default StorageClass (the local one) it uses the
# hostPath volume of manifests/minio/local-volume, whose folder lives in the local cluster's state.
set -euo pipefail
HACK="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=hack/lib/cluster.sh
source "$HACK/lib/cluster.sh"
NAMESPACE=marina-system
k() { bash "$HACK/kubectl.sh" "$@"; }

k apply -f "$MARINA_ROOT/manifests/minio/base/namespace.yaml" >/dev/null
if ! k -n "$NAMESPACE" get secret marina-s3-credentials >/dev/null 2>&1; then
  log "creating Secret $NAMESPACE/marina-s3-credentials with random credentials"
  # Through stdin, so the values never appear in a process list or a log; `create` so that of two
  # concurrent runs only the first one's credentials are ever stored.
  k create -f - >/dev/null 2>&1 <<SECRET || k -n "$NAMESPACE" get secret marina-s3-credentials >/dev/null
apiVersion: v1
kind: Secret
metadata: {name: marina-s3-credentials, namespace: $NAMESPACE}
type: Opaque
stringData:
  AWS_ACCESS_KEY_ID: marina-$(openssl rand -hex 6)
  AWS_SECRET_ACCESS_KEY: $(openssl rand -hex 24)
SECRET
fi

overlay=$MARINA_ROOT/manifests/minio
default_class=$(k get storageclass -o \
  jsonpath='{.items[?(@.metadata.annotations.storageclass\.kubernetes\.io/is-default-class=="true")].metadata.name}')
if [[ -z $default_class ]]; then
  volume=$(sed -n 's/^ *path: //p' "$overlay/local-volume/persistentvolume.yaml")
  server=$(k config view --minify -o jsonpath='{.clusters[0].cluster.server}')
  [[ $server == "https://$NODE_IP:$API_PORT" && $EUID -eq 0 ]] \
    || die "no default StorageClass in this cluster and it is not the local one: create a PV for $NAMESPACE/minio-data"
  install -d -o 65532 -g 65532 -m 0750 "$volume"
  overlay=$overlay/local-volume
fi
log "applying $overlay"
k apply -k "$overlay" >/dev/null
k -n "$NAMESPACE" rollout status deployment/minio --timeout=300s >/dev/null \
  || { k -n "$NAMESPACE" describe pods -l app.kubernetes.io/name=minio | tail -n 30 >&2; die "MinIO did not become ready"; }
log "MinIO ready: http://minio.$NAMESPACE.svc.$CLUSTER_DOMAIN:9000 ($(k -n "$NAMESPACE" get svc minio -o jsonpath='{.spec.clusterIP}'):9000)"
