#!/usr/bin/env bash
# Builds Marina's images without a registry and loads them into the local cluster's containerd:
#   marina.local/marina:dev  images/marina/Dockerfile on a debootstrap Debian base (a Docker engine of its own)
#   marina.local/minio:dev   the pinned MinIO server binary on an empty base (hack/lib/oci_image.py)
# containerd keeps these full names (marina.local never resolves: nothing is ever pulled). Unchanged images are
# not rebuilt or re-imported; ones imported under other names by earlier versions are left alone, unused.
# Usage: hack/images.sh [--no-load]   (--no-load: build only, e.g. before the cluster is up)
# debootstrap fetches from this machine's apt source for the suite (MARINA_DEBIAN_MIRROR=URI overrides it).
set -euo pipefail
HACK="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=hack/lib/cluster.sh
source "$HACK/lib/cluster.sh"
# shellcheck source=hack/lib/docker.sh
source "$HACK/lib/docker.sh"
BASE_TARBALL=$MARINA_CACHE/base-$DEBIAN_SUITE.tar
BASE_IMAGE=marina-base:$DEBIAN_SUITE
# The names the manifests, the operator (MARINA_IMAGE) and the tests use; `docker save` and oci_image.py write
# them into the archives, and `ctr images import` keeps them.
MARINA_DEV_IMAGE=marina.local/marina:dev
MINIO_DEV_IMAGE=marina.local/minio:dev
STARTED=$SECONDS

# A minimal Debian with python3 and its venv module, cached as a tarball.
build_base_rootfs() {
  [[ -f $BASE_TARBALL ]] && return 0
  local root=$MARINA_CACHE/src/rootfs-$DEBIAN_SUITE mirror
  mirror=$(debian_mirror "$DEBIAN_SUITE") || exit 1
  log "debootstrap $DEBIAN_SUITE (minbase + python3) from $mirror"
  release_rootfs_mounts "$root"
  rm -rf "$root"
  trap 'release_rootfs_mounts "$root"' EXIT
  debootstrap --variant=minbase --include=python3,python3-venv "$DEBIAN_SUITE" "$root" "$mirror" \
    >"$MARINA_CACHE/debootstrap.log" 2>&1 || die "debootstrap failed; see $MARINA_CACHE/debootstrap.log"
  release_rootfs_mounts "$root"
  trap - EXIT
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* \
    "$root"/usr/share/man/* "$root"/usr/share/locale/* "$root"/var/log/*
  tar --numeric-owner -C "$root" -cf "$BASE_TARBALL.tmp" . && mv "$BASE_TARBALL.tmp" "$BASE_TARBALL"
  rm -rf "$root"
}

release_rootfs_mounts() {
  local target
  for target in $(findmnt -rn -o TARGET | grep -E "^$1/" | sort -r); do umount -l "$target" || true; done
}

build_marina() {
  if ! docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
    log "importing $BASE_TARBALL as $BASE_IMAGE"
    docker import "$BASE_TARBALL" "$BASE_IMAGE" >/dev/null
  fi
  # A small build context: only what the Dockerfile copies (cp -p keeps Docker's layer cache valid).
  local context=$MARINA_CACHE/context-marina
  rm -rf "$context" && mkdir -p "$context/images/marina/build-ca"
  cp -p "$MARINA_ROOT/pyproject.toml" "$MARINA_ROOT/README.md" "$context/"
  cp -rp "$MARINA_ROOT/operator" "$context/operator"
  find "$context/operator" \( -name __pycache__ -o -name '*.egg-info' \) -prune -exec rm -rf {} +
  [[ -f /etc/ssl/certs/ca-certificates.crt ]] && cp -p /etc/ssl/certs/ca-certificates.crt "$context/images/marina/build-ca/ca.crt"
  log "building $MARINA_DEV_IMAGE (FROM $BASE_IMAGE)"
  local previous
  previous=$(docker image inspect -f '{{.Id}}' "$MARINA_DEV_IMAGE" 2>/dev/null || true)
  DOCKER_BUILDKIT=0 docker build -q --network host --build-arg "BASE_IMAGE=$BASE_IMAGE" \
    -f "$MARINA_ROOT/images/marina/Dockerfile" -t "$MARINA_DEV_IMAGE" "$context" >/dev/null
  # Drop the superseded build; its layers shared with the new one (dependencies) stay cached.
  if [[ -n $previous && $previous != $(docker image inspect -f '{{.Id}}' "$MARINA_DEV_IMAGE") ]]; then
    docker rmi "$previous" >/dev/null 2>&1 || true
  fi
  # The tag earlier versions built (marina:dev) goes; its image too unless another tag or a container holds it.
  docker rmi marina:dev >/dev/null 2>&1 || true
}

build_minio() {
  bash "$HACK/build-binaries.sh" minio
  python3 "$HACK/lib/oci_image.py" --name "$MINIO_DEV_IMAGE" --user 65532:65532 \
    --file "$MINIO_BIN/minio:/usr/bin/minio" --entrypoint /usr/bin/minio --output "$MARINA_CACHE/images/minio.tar"
}

# load IMAGE ID COMMAND...: imports COMMAND's archive (which names IMAGE) into the cluster's containerd unless
# this exact ID is already there under that name.
load() {
  local image=$1 id=$2; shift 2
  local name=${image##*/} && name=${name%%:*}
  local stamp=$STATE_DIR/images/$name.id
  if [[ -f $stamp && $(<"$stamp") == "$id" ]] && ctr_k8s images ls -q | grep -qxF "$image"; then
    return 0
  fi
  log "loading $image into the cluster's containerd"
  "$@" | ctr_k8s images import - >/dev/null
  mkdir -p "$(dirname "$stamp")" && echo "$id" >"$stamp"
}

main() {
  require_root
  lock images 9
  local load_images=1
  [[ ${1:-} == --no-load ]] && load_images=0
  mkdir -p "$MARINA_CACHE/images"
  build_base_rootfs
  ensure_dockerd
  build_marina
  # After the marina image: its MinIO binary may wait for another Go build (hack/build-binaries.sh builds one
  # at a time, e.g. the cluster's while hack/test.sh runs both), the docker build need not.
  build_minio
  if ((load_images)); then
    ctr --address "$CONTAINERD_SOCK" version >/dev/null 2>&1 \
      || die "the cluster's containerd is not running; run 'make cluster-up' first (or pass --no-load)"
    load "$MARINA_DEV_IMAGE" "$(docker image inspect -f '{{.Id}}' "$MARINA_DEV_IMAGE")" \
      docker save "$MARINA_DEV_IMAGE"
    load "$MINIO_DEV_IMAGE" "$(sha256sum "$MARINA_CACHE/images/minio.tar" | cut -c1-64)" \
      cat "$MARINA_CACHE/images/minio.tar"
  fi
  stop_dockerd_if_started
  log "images ready in $((SECONDS - STARTED))s: $MARINA_DEV_IMAGE, $MINIO_DEV_IMAGE"
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then main "$@"; fi
