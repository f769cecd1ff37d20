#!/usr/bin/env bash
# A kind cluster named "marina" with Marina's images loaded and deployed (hack/deploy.sh). One variable picks
# the node image:
#   MARINA_KIND_NODE_IMAGE unset or "local" (default; no registry needed): the node image is built here from
#     Debian and our pinned Kubernetes (hack/kind/node-image.sh) and kind runs on its own Docker engine
#     (hack/kind/docker.sh); marina.local/marina:dev and marina.local/minio:dev come from hack/images.sh's
#     builds. Nothing is pulled.
#   MARINA_KIND_NODE_IMAGE=kindest/node:<v1.33.x>@sha256:... (a machine with Docker and internet): kind on the
#     machine's Docker with that upstream image, e.g. kind v0.30.0's pre-built one for 1.33:
#     kindest/node:v1.33.4@sha256:25a6018e48dfcaee478f4a59af81157a437f15e6e140bf103f85a2e7cd0cbbf2
#     marina.local/marina:dev is built from images/marina/Dockerfile (python:3.11-slim) and
#     marina.local/minio:dev is the upstream MinIO image (Docker Hub's, by its short name) retagged.
# MARINA_KIND_WORKERS=N (default 0: one node that is control plane and worker) adds N worker nodes; the
# control plane then keeps its NoSchedule taint, so workloads land on the workers only (`make kind-up
# WORKERS=3` for the placement and node-failure tests, tests/nodes). A healthy cluster with another node
# count is recreated.
# MARINA_KIND_DEPLOY=0 leaves Marina undeployed (the tests' fixtures deploy their own operator);
# `hack/kind-up.sh --prepare` only builds what the cluster needs (node image, kind, image archives), so that
# make test can do it beside other work and create the cluster later in seconds.
# Re-running reuses a healthy cluster; a broken one (e.g. after a reboot) is recreated.
# Prints the KUBECONFIG to use (.cluster/kind-kubeconfig). Remove everything with hack/kind/kind-down.sh.
set -euo pipefail
KIND_HACK="$(cd "$(dirname "${BASH_SOURCE[0]}")/kind" && pwd)"
# shellcheck source=hack/kind/common.sh
source "$KIND_HACK/common.sh"
NODE_IMAGE=${MARINA_KIND_NODE_IMAGE:-local}
WORKERS=${MARINA_KIND_WORKERS:-0}
[[ $WORKERS =~ ^[0-9]+$ ]] || die "MARINA_KIND_WORKERS must be a whole number (got '$WORKERS')"
MINIO_UPSTREAM_IMAGE=${MINIO_UPSTREAM_IMAGE:-minio/minio:RELEASE.2025-09-07T16-13-09Z}
# The names the manifests, the operator and the tests use (marina.local never resolves: nothing is pulled);
# `docker save` and `kind load` keep them in the node's containerd.
MARINA_DEV_IMAGE=$KIND_LOCAL_REPO/marina:dev
MINIO_DEV_IMAGE=$KIND_LOCAL_REPO/minio:dev
export KUBECONFIG=${MARINA_KIND_KUBECONFIG:-$MARINA_ROOT/.cluster/kind-kubeconfig}
STARTED=$SECONDS
# Our pinned kubectl first (hack/kubectl.sh takes the one on PATH).
export PATH=$MARINA_CACHE/bin-$KUBE_VERSION:$PATH
k() { bash "$MARINA_ROOT/hack/kubectl.sh" "$@"; }

# kind_config IMAGE LOCAL: the cluster's configuration. Pod and Service ranges differ from the local
# cluster's; with the local image, kubeadm takes our images (marina.local/...) and leaves CoreDNS to us
# (hack/addons/coredns.yaml: cluster zones only, nothing forwarded).
kind_config() {
  cat <<CONFIG
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
name: $KIND_CLUSTER
networking:
  apiServerAddress: 127.0.0.1
  podSubnet: $KIND_POD_SUBNET
  serviceSubnet: $KIND_SERVICE_SUBNET
nodes:
- role: control-plane
  image: $1
CONFIG
  local worker
  for ((worker = 0; worker < WORKERS; worker++)); do printf -- '- role: worker\n  image: %s\n' "$1"; done
  (($2)) || return 0
  cat <<CONFIG
kubeadmConfigPatches:
- |
  kind: ClusterConfiguration
  imageRepository: $KIND_LOCAL_REPO
  etcd:
    local:
      imageTag: $ETCD_VERSION
- |
  kind: InitConfiguration
  skipPhases: [addon/coredns]
CONFIG
}

cluster_healthy() {
  "$KIND" get clusters 2>/dev/null | grep -qx "$KIND_CLUSTER" || return 1
  "$KIND" export kubeconfig --name "$KIND_CLUSTER" --kubeconfig "$KUBECONFIG" >/dev/null 2>&1 || return 1
  k get --raw /readyz >/dev/null 2>&1 || return 1
  local nodes
  nodes=$("$KIND" get nodes --name "$KIND_CLUSTER" 2>/dev/null | wc -l)
  ((nodes == WORKERS + 1)) || { log "kind cluster '$KIND_CLUSTER' has $nodes nodes, $((WORKERS + 1)) wanted"; return 1; }
}

create_cluster() {
  local image=$1 local_image=$2 config
  if cluster_healthy; then
    log "kind cluster '$KIND_CLUSTER' is already up"
    return 0
  fi
  if "$KIND" get clusters 2>/dev/null | grep -qx "$KIND_CLUSTER"; then
    log "kind cluster '$KIND_CLUSTER' exists but does not answer or has another node count: recreating it"
    "$KIND" delete cluster --name "$KIND_CLUSTER" --kubeconfig "$KUBECONFIG"
  fi
  config=$(mktemp) && kind_config "$image" "$local_image" >"$config"
  mkdir -p "$(dirname "$KUBECONFIG")"
  local start=$SECONDS
  log "creating kind cluster '$KIND_CLUSTER' from $image"
  "$KIND" create cluster --config "$config" --kubeconfig "$KUBECONFIG" --wait 300s ${MARINA_KIND_RETAIN:+--retain}
  rm -f "$config"
  if ((local_image)); then
    log "CoreDNS (cluster zones only)"
    sed -e "s/@CLUSTER_DOMAIN@/cluster.local/" -e "s/@DNS_SERVICE_IP@/${KIND_SERVICE_SUBNET%.0/*}.10/" \
      "$MARINA_ROOT/hack/addons/coredns.yaml" | k apply -f - >/dev/null
    k -n kube-system rollout status deployment/coredns --timeout=180s >/dev/null
  fi
  log "kind cluster '$KIND_CLUSTER' ready in $((SECONDS - start))s"
}

# Local: marina.local/marina:dev and marina.local/minio:dev from the project's own image builds (hack/images.sh's
# steps, under its lock, on its image-build engine, which is started and stopped here only when it is not already
# running, as `make images` does; the kind engine cannot build it: its containers resolve no names, and pip needs
# PyPI), saved as archives for `kind load image-archive`.
local_app_images() {
  (
    # shellcheck source=hack/images.sh
    source "$MARINA_ROOT/hack/images.sh"
    lock images 8
    mkdir -p "$MARINA_CACHE/images"
    build_base_rootfs
    build_minio
    ensure_dockerd
    build_marina
    # The stamp holds the name too: an archive saved under another name (an earlier version's) is saved again.
    local stamp
    stamp="$MARINA_DEV_IMAGE $(docker image inspect -f '{{.Id}}' "$MARINA_DEV_IMAGE")"
    if [[ ! -f $KIND_CACHE/images/marina.tar || $(cat "$KIND_CACHE/images/marina.id" 2>/dev/null) != "$stamp" ]]; then
      docker save "$MARINA_DEV_IMAGE" >"$KIND_CACHE/images/marina.tar.tmp"
      mv "$KIND_CACHE/images/marina.tar.tmp" "$KIND_CACHE/images/marina.tar"
      echo "$stamp" >"$KIND_CACHE/images/marina.id"
    fi
    stop_dockerd_if_started
  )
}

main_local() {
  ((EUID == 0)) || die "run as root (the node image build and the kind Docker engine need it)"
  lock kind 7
  bash "$KIND_HACK/node-image.sh"
  bash "$MARINA_ROOT/hack/build-binaries.sh" kind
  KIND=$KIND_BIN
  mkdir -p "$MARINA_ROOT/.cluster/bin" && ln -sf "$KIND" "$MARINA_ROOT/.cluster/bin/kind"
  local_app_images
  [[ ${1:-} == --prepare ]] && return 0
  # shellcheck source=hack/kind/docker.sh
  source "$KIND_HACK/docker.sh"
  ensure_kind_dockerd
  ensure_kind_network
  docker image inspect "$KIND_LOCAL_NODE_IMAGE" >/dev/null || die "$KIND_LOCAL_NODE_IMAGE is missing"
  create_cluster "$KIND_LOCAL_NODE_IMAGE" 1
  load_archive "$KIND_CACHE/images/marina.tar"
  load_archive "$MARINA_CACHE/images/minio.tar"
}

# load_archive TAR: `kind load image-archive` into the nodes that run pods and do not already hold this very
# archive (a stamp in each node's /var, so a recreated node loads again).
load_archive() {
  local archive=$1 sum stamp node missing=()
  sum=$(sha256sum "$archive" | cut -c1-64)
  stamp=/var/lib/marina-loaded/$(basename "$archive").sha256
  # With workers, the control plane keeps its NoSchedule taint: Marina's pods never run there.
  for node in $("$KIND" get nodes --name "$KIND_CLUSTER"); do
    ((WORKERS)) && [[ $node == "$KIND_CLUSTER-control-plane" ]] && continue
    [[ $(docker exec "$node" cat "$stamp" 2>/dev/null) == "$sum" ]] || missing+=("$node")
  done
  ((${#missing[@]})) || return 0
  log "loading $(basename "$archive") into ${missing[*]}"
  "$KIND" load image-archive --name "$KIND_CLUSTER" --nodes "$(IFS=,; echo "${missing[*]}")" "$archive"
  for node in "${missing[@]}"; do
    echo "$sum" | docker exec -i "$node" sh -c "mkdir -p ${stamp%/*} && cat >$stamp"
  done
}

main_upstream() {
  local tool
  for tool in kind docker; do
    command -v "$tool" >/dev/null || die "'$tool' is required for make kind-up with MARINA_KIND_NODE_IMAGE=$NODE_IMAGE"
  done
  KIND=kind
  create_cluster "$NODE_IMAGE" 0
  docker build -f "$MARINA_ROOT/images/marina/Dockerfile" -t "$MARINA_DEV_IMAGE" "$MARINA_ROOT"
  docker image inspect "$MINIO_UPSTREAM_IMAGE" >/dev/null 2>&1 || docker pull "$MINIO_UPSTREAM_IMAGE"
  docker tag "$MINIO_UPSTREAM_IMAGE" "$MINIO_DEV_IMAGE"
  "$KIND" load docker-image --name "$KIND_CLUSTER" "$MARINA_DEV_IMAGE" "$MINIO_DEV_IMAGE"
}

if [[ ${1:-} == --prepare ]]; then
  [[ $NODE_IMAGE == local ]] || die "--prepare is for the node image built here (MARINA_KIND_NODE_IMAGE unset)"
  main_local --prepare
  log "kind's node image, binary and image archives ready in $((SECONDS - STARTED))s"
  exit 0
fi
if [[ $NODE_IMAGE == local ]]; then main_local; else main_upstream; fi
if [[ ${MARINA_KIND_DEPLOY:-1} == 0 ]]; then
  log "kind cluster '$KIND_CLUSTER' up in $((SECONDS - STARTED))s (Marina not deployed); use it with:"
  echo "  export KUBECONFIG=$KUBECONFIG"
  exit 0
fi
bash "$MARINA_ROOT/hack/deploy.sh"
log "kind cluster '$KIND_CLUSTER' deployed in $((SECONDS - STARTED))s; use it with:"
echo "  export KUBECONFIG=$KUBECONFIG"
