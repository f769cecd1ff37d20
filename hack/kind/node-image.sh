#!/usr/bin/env bash
# Builds the kind node image for Kubernetes $KUBE_VERSION on this machine, without any registry:
#   1. root file systems from Debian (debootstrap): the node (systemd, containerd, runc, CNI plugins,
#      iptables...) and a small "tools" one (iptables, conntrack, coreutils) for kube-proxy and the
#      local-path helper pods; cached as tarballs in ~/.cache/marina/kind/
#   2. marina.local/kind-base:<suite>: the node root file system + images/kind/base (entrypoint, units, configs)
#   3. the images the node runs, as OCI archives: kube-apiserver, -controller-manager, -scheduler,
#      kube-proxy (our pinned builds), etcd, CoreDNS, pause, local-path-provisioner and its helper
#   4. marina.local/kind-node:<kube>: base + kubeadm, kubelet, kubectl, crictl + those images imported
#      (unpacked on first use) into the node's containerd + kind's manifests (CNI, storage) + a versions file
# It runs against the kind Docker engine (hack/kind/dockerd.sh), which it starts when needed.
# Usage: hack/kind/node-image.sh [--force]   (--force: rebuild the node image even when it is up to date)
# debootstrap fetches from this machine's apt source for the suite (MARINA_DEBIAN_MIRROR=URI overrides it).
set -euo pipefail
KIND_HACK="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=hack/kind/common.sh
source "$KIND_HACK/common.sh"
NODE_PACKAGES=systemd,systemd-sysv,dbus,containerd,runc,containernetworking-plugins,iptables,conntrack,iproute2,ethtool,kmod,procps,ca-certificates,socat,libseccomp2,util-linux,mount,findutils,ebtables,nftables
TOOLS_PACKAGES=iptables,conntrack,kmod,iproute2

release_rootfs_mounts() {
  local target
  for target in $(findmnt -rn -o TARGET | grep -E "^$1/" | sort -r); do umount -l "$target" || true; done
}

# rootfs NAME PACKAGES: ~/.cache/marina/kind/NAME-<suite>.tar, a minbase Debian with PACKAGES.
rootfs() {
  local name=$1 packages=$2 tarball=$KIND_CACHE/$1-$DEBIAN_SUITE.tar
  [[ -f $tarball ]] && return 0
  local root=$MARINA_CACHE/src/kind-$name-$DEBIAN_SUITE mirror
  mirror=$(debian_mirror "$DEBIAN_SUITE") || exit 1
  log "debootstrap $DEBIAN_SUITE ($name: minbase + $packages) from $mirror"
  release_rootfs_mounts "$root"
  rm -rf "$root"
  trap 'release_rootfs_mounts "'"$root"'"' EXIT
  debootstrap --variant=minbase --include="$packages" "$DEBIAN_SUITE" "$root" "$mirror" \
    >"$KIND_CACHE/debootstrap-$name.log" 2>&1 || die "debootstrap failed; see $KIND_CACHE/debootstrap-$name.log"
  release_rootfs_mounts "$root"
  trap - EXIT
  # Record what Debian gave us before the package lists go.
  chroot "$root" dpkg-query -W -f '${Package}\t${Version}\n' >"$KIND_CACHE/$name-$DEBIAN_SUITE.packages"
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* \
    "$root"/usr/share/man/* "$root"/usr/share/locale/* "$root"/var/log/*
  tar --numeric-owner -C "$root" -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
  rm -rf "$root"
}

# docker_image_from_rootfs NAME TARBALL: imports a rootfs tarball as an image unless NAME already holds it.
docker_image_from_rootfs() {
  local name=$1 tarball=$2 sum
  sum=$(stat -c '%s-%Y' "$tarball")
  [[ $(docker image inspect -f '{{index .Config.Labels "dev.marina.rootfs"}}' "$name" 2>/dev/null) == "$sum" ]] && return 0
  log "importing $tarball as $name"
  docker import --change "LABEL dev.marina.rootfs=$sum" "$tarball" "$name" >/dev/null
}

# oci NAME USER FILE:DEST... -- ENTRYPOINT...: a one-layer OCI archive of static binaries (hack/lib/oci_image.py).
oci() {
  local name=$1 user=$2 files=() output; shift 2
  while [[ $1 != -- ]]; do files+=(--file "$1"); shift; done
  shift
  output=$ARCHIVES/$(basename "${name%%:*}").tar
  python3 "$MARINA_ROOT/hack/lib/oci_image.py" --name "$name" --user "$user" "${files[@]}" \
    --entrypoint "$@" --output "$output"
  echo "$output"
}

# component_images: every image the node runs, as archives in $ARCHIVES (printed, one a line).
component_images() {
  local kube=$MARINA_CACHE/bin-$KUBE_VERSION c
  for c in kube-apiserver kube-controller-manager kube-scheduler; do
    oci "$KIND_LOCAL_REPO/$c:$KUBE_VERSION" 0:0 "$kube/$c:/usr/local/bin/$c" -- "/usr/local/bin/$c"
  done
  oci "$KIND_LOCAL_REPO/etcd:$ETCD_VERSION" 0:0 "$MARINA_CACHE/etcd-$ETCD_VERSION/etcd:/usr/local/bin/etcd" \
    "$MARINA_CACHE/etcd-$ETCD_VERSION/etcdctl:/usr/local/bin/etcdctl" -- /usr/local/bin/etcd
  # Our pause (images/pause) under the tag kubeadm $KUBE_VERSION expects (3.10), so its preflight finds it.
  oci "$KIND_LOCAL_REPO/pause:3.10" 65535:65535 "$MARINA_CACHE/pause/pause:/pause" -- /pause
  # The same name and user as the local cluster's CoreDNS (marina.local/coredns:dev), so
  # hack/addons/coredns.yaml serves both.
  oci "$KIND_LOCAL_REPO/coredns:dev" 65532:65532 "$MARINA_CACHE/coredns-$COREDNS_VERSION/coredns:/coredns" -- /coredns
  oci "$KIND_LOCAL_REPO/local-path-provisioner:$LOCAL_PATH_PROVISIONER_VERSION" 0:0 \
    "$MARINA_CACHE/local-path-provisioner-$LOCAL_PATH_PROVISIONER_VERSION/local-path-provisioner:/usr/local/bin/local-path-provisioner" \
    -- /usr/local/bin/local-path-provisioner
  # kube-proxy runs iptables and conntrack: it goes on the Debian tools image, which also serves the
  # CNI installer and local-path's helper pods.
  local context=$MARINA_CACHE/src/kind-kube-proxy
  rm -rf "$context" && mkdir -p "$context" && cp -p "$kube/kube-proxy" "$context/"
  printf 'FROM %s\nCOPY kube-proxy /usr/local/bin/kube-proxy\n' "$KIND_TOOLS_IMAGE" >"$context/Dockerfile"
  DOCKER_BUILDKIT=0 docker build -q -t "$KIND_LOCAL_REPO/kube-proxy:$KUBE_VERSION" "$context" >/dev/null
  local archive=$ARCHIVES/kube-proxy+tools.tar ids
  ids=$(docker image inspect -f '{{.Id}}' "$KIND_LOCAL_REPO/kube-proxy:$KUBE_VERSION" "$KIND_TOOLS_IMAGE")
  if [[ ! -f $archive || ! -f $archive.ids || $(<"$archive.ids") != "$ids" ]]; then
    docker save "$KIND_LOCAL_REPO/kube-proxy:$KUBE_VERSION" "$KIND_TOOLS_IMAGE" >"$archive.tmp" && mv "$archive.tmp" "$archive"
    echo "$ids" >"$archive.ids"
  fi
  echo "$archive"
}

# versions_file: where every part of the node image comes from (written to /kind/marina-versions).
versions_file() {
  local pkg
  echo "# Marina's kind node image $KIND_LOCAL_NODE_IMAGE, built on this machine by hack/kind/node-image.sh"
  echo "# component	version	source"
  echo "kind (CLI)	$KIND_VERSION	Go module sigs.k8s.io/kind"
  for pkg in kubeadm kubelet kubectl kube-apiserver kube-controller-manager kube-scheduler kube-proxy; do
    echo "$pkg	$KUBE_VERSION	Go module k8s.io/kubernetes (cmd/$pkg)"
  done
  echo "etcd	$ETCD_VERSION	Go module go.etcd.io/etcd/server/v3"
  echo "coredns	$COREDNS_VERSION	Go module github.com/coredns/coredns (Corefile: cluster zones only, no forward)"
  echo "pause	3.10 (tag kubeadm expects)	images/pause (Go, this repository)"
  echo "crictl	$CRICTL_VERSION	Go module sigs.k8s.io/cri-tools"
  echo "local-path-provisioner	$LOCAL_PATH_PROVISIONER_VERSION	Go module github.com/rancher/local-path-provisioner"
  echo "cni	bridge+host-local+portmap	Debian containernetworking-plugins (images/kind/manifests/default-cni.yaml)"
  for pkg in systemd containerd runc containernetworking-plugins iptables conntrack; do
    printf '%s\t%s\tDebian %s package (node)\n' "$pkg" "$(awk -v p="$pkg" '$1 == p {print $2}' "$KIND_CACHE/node-$DEBIAN_SUITE.packages")" "$DEBIAN_SUITE"
  done
  for pkg in iptables conntrack coreutils; do
    printf '%s\t%s\tDebian %s package (tools image: kube-proxy, CNI installer, local-path helper)\n' "$pkg" \
      "$(awk -v p="$pkg" '$1 == p {print $2}' "$KIND_CACHE/tools-$DEBIAN_SUITE.packages")" "$DEBIAN_SUITE"
  done
}

# node_image: base + Kubernetes + preloaded images, rebuilt only when one of its inputs changed.
node_image() {
  local force=$1 kube=$MARINA_CACHE/bin-$KUBE_VERSION archives=() binaries inputs
  mapfile -t archives < <(component_images)
  binaries=("$MARINA_CACHE/kubeadm-$KUBE_VERSION/kubeadm" "$kube/kubelet" "$kube/kubectl"
    "$MARINA_CACHE/crictl-$CRICTL_VERSION/crictl")
  inputs=$( { docker image inspect -f '{{.Id}}' "$KIND_BASE_IMAGE"; sha256sum "${binaries[@]}" "${archives[@]}" \
    "$KIND_HACK/node-image.sh" "$MARINA_ROOT"/images/kind/manifests/*; } | sha256sum | cut -c1-64)
  if [[ $force == 0 && $(docker image inspect -f '{{index .Config.Labels "dev.marina.inputs"}}' \
    "$KIND_LOCAL_NODE_IMAGE" 2>/dev/null) == "$inputs" ]]; then
    log "$KIND_LOCAL_NODE_IMAGE is up to date"
    return 0
  fi
  log "building $KIND_LOCAL_NODE_IMAGE"
  local id
  id=$(docker run -d --entrypoint sleep --label dev.marina.kind-build=1 --security-opt seccomp=unconfined \
    "$KIND_BASE_IMAGE" infinity)
  trap 'docker rm -f -v '"$id"' >/dev/null 2>&1 || true' EXIT
  local b
  for b in "${binaries[@]}"; do docker cp "$b" "$id:/usr/bin/$(basename "$b")"; done
  docker exec "$id" chown root:root /usr/bin/kubeadm /usr/bin/kubelet /usr/bin/kubectl /usr/bin/crictl
  docker exec "$id" mkdir -p /kind/manifests
  docker cp "$MARINA_ROOT/images/kind/manifests/." "$id:/kind/manifests/"
  printf '%s' "$KUBE_VERSION" | docker exec -i "$id" sh -c 'cat >/kind/version'
  versions_file | tee "$KIND_CACHE/versions.tsv" | docker exec -i "$id" sh -c 'cat >/kind/marina-versions'
  # containerd in the build container stores the images unpacked-later (--no-unpack): no mounts needed here;
  # the node unpacks them on first use onto its /var volume.
  docker exec "$id" sh -c 'containerd >/tmp/containerd.log 2>&1 & echo $! >/tmp/containerd.pid'
  local i
  for ((i = 0; i < 30; i++)); do docker exec "$id" ctr version >/dev/null 2>&1 && break; sleep 1; done
  for b in "${archives[@]}"; do
    docker exec -i "$id" ctr --namespace k8s.io images import --no-unpack - <"$b" >/dev/null
  done
  # Pinned: the kubelet's image garbage collection never removes them (there is nowhere to pull them from).
  docker exec "$id" sh -c 'for i in $(ctr -n k8s.io images ls -q); do ctr -n k8s.io images label "$i" io.cri-containerd.pinned=pinned >/dev/null; done'
  docker exec "$id" ctr --namespace k8s.io images ls -q | grep -v '^sha256:' | sort | tee "$KIND_CACHE/node-images.txt" >&2
  # Stop containerd so its database is consistent (sleep, the container's PID 1, reaps nobody: wait for
  # the process to exit or turn zombie).
  docker exec "$id" sh -c 'p=$(cat /tmp/containerd.pid); kill "$p"
    while [ -d /proc/$p ] && ! grep -q "^State:.*Z" /proc/$p/status 2>/dev/null; do sleep 0.2; done
    rm -f /tmp/containerd.*'
  local previous
  previous=$(docker image inspect -f '{{.Id}}' "$KIND_LOCAL_NODE_IMAGE" 2>/dev/null || true)
  docker commit --change 'ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]' --change 'CMD []' \
    --change "LABEL dev.marina.inputs=$inputs" "$id" "$KIND_LOCAL_NODE_IMAGE" >/dev/null
  docker rm -f -v "$id" >/dev/null
  trap - EXIT
  # Drop the superseded node image (1 GB) unless a node still runs it.
  [[ -n $previous ]] && docker rmi "$previous" >/dev/null 2>&1 || true
  log "$KIND_LOCAL_NODE_IMAGE built ($(docker image inspect -f '{{.Size}}' "$KIND_LOCAL_NODE_IMAGE" | numfmt --to=iec))"
}

main() {
  ((EUID == 0)) || die "run as root"
  local force=0
  [[ ${1:-} == --force ]] && force=1
  mkdir -p "$KIND_CACHE"
  lock kind-images 9
  local start=$SECONDS
  rootfs node "$NODE_PACKAGES"
  rootfs tools "$TOOLS_PACKAGES"
  bash "$MARINA_ROOT/hack/build-binaries.sh" pause kube etcd coredns kubeadm crictl local_path_provisioner
  # shellcheck source=hack/kind/docker.sh
  source "$KIND_HACK/docker.sh"
  ensure_kind_dockerd
  ARCHIVES=$KIND_CACHE/images
  mkdir -p "$ARCHIVES"
  docker_image_from_rootfs "$KIND_LOCAL_REPO/kind-rootfs-node:$DEBIAN_SUITE" "$KIND_CACHE/node-$DEBIAN_SUITE.tar"
  docker_image_from_rootfs "$KIND_TOOLS_IMAGE" "$KIND_CACHE/tools-$DEBIAN_SUITE.tar"
  DOCKER_BUILDKIT=0 docker build -q --build-arg "ROOTFS=$KIND_LOCAL_REPO/kind-rootfs-node:$DEBIAN_SUITE" \
    -t "$KIND_BASE_IMAGE" "$MARINA_ROOT/images/kind/base" >/dev/null
  node_image "$force"
  log "node image ready in $((SECONDS - start))s: $KIND_LOCAL_NODE_IMAGE (versions: $KIND_CACHE/versions.tsv)"
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then main "$@"; fi
