# Settings shared by the kind scripts (sourced, never run). Everything kind on this machine owns lives under
# these paths: its own Docker engine (data-root, exec-root, socket, address pool), so it never touches the
# local cluster's containerd, its image-build dockerd (/run/marina-docker) or their networks.
# shellcheck shell=bash
# shellcheck source=hack/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"

KIND_CLUSTER=${KIND_CLUSTER:-marina}
KIND_CACHE=$MARINA_CACHE/kind                      # rootfs tarballs, image archives, versions record
KIND_DOCKER_EXEC_ROOT=/run/marina-kind-docker
KIND_DOCKER_DATA_ROOT=/var/lib/marina-kind-docker  # kind's node containers and images (kept between runs)
KIND_DOCKER_SOCK=$KIND_DOCKER_EXEC_ROOT/docker.sock
KIND_DOCKER_LOG=$KIND_CACHE/dockerd.log
# Docker networks (kind's "kind" network) come from this pool only: away from the local cluster's
# 10.244.0.0/24 and 10.96.0.0/24 and from Docker's default 172.17/16.
KIND_DOCKER_POOL=172.30.0.0/16
KIND_DOCKER_BRIDGE_IP=172.29.255.1/24              # docker0 of this engine (unused by kind, must not collide)
# Inside the node (its own network namespace) pods and services get ranges distinct from the local cluster's.
KIND_POD_SUBNET=10.245.0.0/16
KIND_SERVICE_SUBNET=10.97.0.0/16
# The node image built here (hack/kind/node-image.sh) and its parts. "marina.local" never resolves, so an
# accidental pull of any of these fails on this machine instead of reaching a registry.
KIND_LOCAL_REPO=marina.local
KIND_LOCAL_NODE_IMAGE=$KIND_LOCAL_REPO/kind-node:$KUBE_VERSION
KIND_BASE_IMAGE=$KIND_LOCAL_REPO/kind-base:$DEBIAN_SUITE
KIND_TOOLS_IMAGE=$KIND_LOCAL_REPO/kind-tools:$DEBIAN_SUITE
KIND_BIN=$MARINA_CACHE/kind-$KIND_VERSION/kind
KIND_RUNTIME=$MARINA_CACHE/kind-runtime/marina-kind-runc
