#!/usr/bin/env bash
# Copies the datasets and models kept in MinIO's single volume of earlier versions ($VOLUMES_DIR/minio-data,
# which cannot become one of the four drives MinIO now erasure-codes over) into the running MinIO, on the
# local cluster. hack/minio-up.sh runs it when it finds that folder; by hand: `sudo bash hack/minio-migrate.sh`.
#
# The pinned MinIO binary serves the old folder on loopback (with the kept root credentials that encrypt its
# data; as root, since the volumes folder is root's only), hack/lib/minio_copy.py copies every bucket and object into the
# cluster's MinIO and checks each one's sha256 there; then the old folder is renamed minio-data.migrated-<time>
# (kept until PURGE=1, never deleted here). A copy cut short or failed leaves the old folder where it was, so
# running this again carries on. Identities are not copied: the operator re-creates each namespace's.
set -euo pipefail
HACK="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=hack/lib/cluster.sh
source "$HACK/lib/cluster.sh"
NAMESPACE=marina-system
k() { bash "$HACK/kubectl.sh" "$@"; }

require_root
old=$VOLUMES_DIR/minio-data
[[ -f $old/.minio.sys/format.json ]] || die "no data of a single-volume MinIO in $old"
[[ -s $MINIO_CREDENTIALS_FILE ]] \
  || die "$old has no root credentials kept beside it ($MINIO_CREDENTIALS_FILE): its data cannot be read"
read_kept_credentials "$MINIO_CREDENTIALS_FILE"
access=$KEPT_ACCESS secret_key=$KEPT_SECRET_KEY
# Two servers on one folder would corrupt it: none of the cluster's may still serve it (an earlier version's pod).
k -n "$NAMESPACE" get pods -l app.kubernetes.io/name=minio \
  -o jsonpath='{.items[*].spec.volumes[*].persistentVolumeClaim.claimName}' | grep -qw minio-data \
  && die "a MinIO pod of an earlier version still serves $old: deploy this version's MinIO first (hack/minio-up.sh)"
target=http://$(k -n "$NAMESPACE" get svc minio -o jsonpath='{.spec.clusterIP}'):9000
wait_for "MinIO in the cluster ($target)" 120 curl -fsS "$target/minio/health/ready"
[[ -x $MINIO_BIN/minio ]] || bash "$HACK/build-binaries.sh" minio

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
port=$(free_port)
home=$(mktemp -d /tmp/marina-minio-migrate.XXXXXX)
mkdir -p "$LOG_DIR"
log "serving $old on 127.0.0.1:$port (log $LOG_DIR/minio-migrate.log) to copy its objects into $target"
console_port=$(free_port)
# The credentials go through the environment (which only root may read), never the arguments.
(
  export MINIO_ROOT_USER=$access MINIO_ROOT_PASSWORD=$secret_key HOME=$home MINIO_BROWSER=off MINIO_UPDATE=off
  exec "$MINIO_BIN/minio" server --quiet --address "127.0.0.1:$port" --console-address "127.0.0.1:$console_port" "$old"
) >"$LOG_DIR/minio-migrate.log" 2>&1 &
server=$!
# stopped: the server; the folder, should it stay, owned again by uid 65532 (as an earlier version's pod left it)
stopped() {
  kill "$server" 2>/dev/null || true
  wait "$server" 2>/dev/null || true
  rm -rf "$home"
  [[ ! -d $old ]] || chown -R 65532:65532 "$old"
}
trap stopped EXIT
wait_for "minio-migrate (the old volume's MinIO)" 60 curl -fsS "http://127.0.0.1:$port/minio/health/ready"
AWS_ACCESS_KEY_ID=$access AWS_SECRET_ACCESS_KEY=$secret_key python3 "$HACK/lib/minio_copy.py" \
  "http://127.0.0.1:$port" "$target" >&2 \
  || die "copying $old into MinIO's drives failed (above); $old is untouched: run hack/minio-migrate.sh again"
stopped
kept=$old.migrated-$(date +%Y%m%d-%H%M%S)
mv "$old" "$kept"
log "$old copied into MinIO's four drives; kept as $kept until PURGE=1 (or delete it by hand)"
