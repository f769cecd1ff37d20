#!/usr/bin/env bash
# Removes what hack/kind-up.sh made on this machine: the kind cluster, kind's Docker network and its forward
# filter, and stops the kind Docker engine (by its pid) when no other kind cluster uses it. Images and the
# engine's data-root stay as a cache (remove /var/lib/marina-kind-docker and ~/.cache/marina/kind to reclaim).
# With MARINA_KIND_NODE_IMAGE set to an upstream image, only `kind delete cluster` runs (the machine's Docker).
set -euo pipefail
KIND_HACK="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=hack/kind/docker.sh
source "$KIND_HACK/docker.sh"
KUBECONFIG_FILE=${MARINA_KIND_KUBECONFIG:-$MARINA_ROOT/.cluster/kind-kubeconfig}

if [[ ${MARINA_KIND_NODE_IMAGE:-local} != local ]]; then
  unset DOCKER_HOST
  kind delete cluster --name "$KIND_CLUSTER" --kubeconfig "$KUBECONFIG_FILE"
  exit 0
fi
((EUID == 0)) || die "run as root"
lock kind 7
if kind_dockerd_pid >/dev/null && docker version >/dev/null 2>&1; then
  if [[ -x $KIND_BIN ]] && "$KIND_BIN" get clusters 2>/dev/null | grep -qx "$KIND_CLUSTER"; then
    "$KIND_BIN" delete cluster --name "$KIND_CLUSTER" --kubeconfig "$KUBECONFIG_FILE"
  fi
  # Leftovers of an interrupted node image build.
  docker ps -aq --filter label=dev.marina.kind-build=1 | xargs -r docker rm -f -v >/dev/null
  if [[ -z $(docker ps -aq --filter label=io.x-k8s.kind.cluster) ]]; then
    docker network rm "$KIND_NETWORK" >/dev/null 2>&1 || true
    remove_kind_network_filter
    stop_kind_dockerd
  else
    log "other kind clusters still run on this engine; leaving it up"
  fi
else
  remove_kind_network_filter
  stop_kind_dockerd
  # A bridge left by an engine that died.
  ip link show "$KIND_NETWORK_BRIDGE" >/dev/null 2>&1 && ip link delete "$KIND_NETWORK_BRIDGE" || true
fi
rm -f "$KUBECONFIG_FILE"
log "kind cluster '$KIND_CLUSTER' removed"
