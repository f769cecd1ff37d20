# The Docker engine kind uses on this machine (sourced, never run): Debian's dockerd with its own data-root,
# exec-root, socket and address pool, no default bridge and no iptables changes of its own, and the OCI
# runtime wrapper hack/kind/runtime as its default runtime (kind's --privileged nodes need it where root
# lacks a capability). Only kind's network bridge (marina-kind0) is created, and a forward filter keeps
# everything on that bridge on this machine.
# shellcheck shell=bash
# shellcheck source=hack/kind/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
export DOCKER_HOST=unix://$KIND_DOCKER_SOCK
KIND_NETWORK=kind                         # the name kind looks for; created here so its subnet is ours
KIND_NETWORK_BRIDGE=marina-kind0
KIND_NETWORK_SUBNET=172.30.0.0/24
KIND_NETWORK_GATEWAY=172.30.0.1
KIND_FORWARD_CHAIN=MARINA-KIND-FORWARD
KIND_IP_FORWARD_SAVED=$KIND_DOCKER_EXEC_ROOT/ip_forward.saved

# build_kind_runtime: the runtime wrapper (a few hundred kB, no dependencies), rebuilt when its source changes.
build_kind_runtime() {
  local src=$MARINA_ROOT/hack/kind/runtime
  [[ -x $KIND_RUNTIME && $KIND_RUNTIME -nt $src/main.go ]] && return 0
  require_go
  log "building $KIND_RUNTIME"
  mkdir -p "$(dirname "$KIND_RUNTIME")"
  (cd "$src" && CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS="-trimpath -buildvcs=false" \
    go build -ldflags "-s -w" -o "$KIND_RUNTIME.tmp" .) && mv "$KIND_RUNTIME.tmp" "$KIND_RUNTIME"
}

kind_dockerd_pid() {
  local pid
  pid=$(cat "$KIND_DOCKER_EXEC_ROOT/dockerd.pid" 2>/dev/null) || return 1
  [[ -n $pid && -r /proc/$pid/cmdline ]] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q "dockerd.*$KIND_DOCKER_DATA_ROOT" && echo "$pid"
}

# ensure_kind_dockerd: starts the engine unless it already answers.
ensure_kind_dockerd() {
  if kind_dockerd_pid >/dev/null && docker version >/dev/null 2>&1; then return 0; fi
  command -v dockerd >/dev/null || die "dockerd is missing; run hack/install-deps.sh (Debian package docker.io)"
  build_kind_runtime
  mkdir -p "$KIND_DOCKER_EXEC_ROOT" "$KIND_DOCKER_DATA_ROOT" "$KIND_CACHE"
  # Leftovers of an engine that died: its pidfile and socket would stop the new one.
  rm -f "$KIND_DOCKER_EXEC_ROOT/dockerd.pid" "$KIND_DOCKER_SOCK"
  log "starting the kind Docker engine (data-root $KIND_DOCKER_DATA_ROOT, socket $DOCKER_HOST)"
  # --dns 127.0.0.1: containers' external resolvers are loopback only, which Docker's embedded DNS drops,
  # so it never forwards a query off this machine (the host's resolv.conf points elsewhere).
  setsid dockerd --data-root "$KIND_DOCKER_DATA_ROOT" --exec-root "$KIND_DOCKER_EXEC_ROOT" \
    --pidfile "$KIND_DOCKER_EXEC_ROOT/dockerd.pid" -H "$DOCKER_HOST" --bridge none --iptables=false \
    --ip-masq=false --ip-forward=false --default-address-pool "base=$KIND_DOCKER_POOL,size=24" \
    --dns 127.0.0.1 --add-runtime "marina-kind-runc=$KIND_RUNTIME" --default-runtime marina-kind-runc \
    --storage-driver overlay2 >>"$KIND_DOCKER_LOG" 2>&1 </dev/null 7>&- 8>&- 9>&- &
  local i
  for ((i = 0; i < 60; i++)); do
    docker version >/dev/null 2>&1 && return 0
    sleep 1
  done
  tail -n 20 "$KIND_DOCKER_LOG" >&2
  die "the kind Docker engine did not start within 60s (log: $KIND_DOCKER_LOG)"
}

# ensure_kind_network: kind's "kind" network on our subnet and bridge name, plus the forward filter that
# drops whatever would leave this machine through that bridge (Docker runs with --iptables=false, so
# nothing is masqueraded; this makes sure nothing is even routed out).
ensure_kind_network() {
  if ! docker network inspect "$KIND_NETWORK" >/dev/null 2>&1; then
    log "creating Docker network $KIND_NETWORK ($KIND_NETWORK_SUBNET on bridge $KIND_NETWORK_BRIDGE)"
    docker network create -d bridge --subnet "$KIND_NETWORK_SUBNET" --gateway "$KIND_NETWORK_GATEWAY" \
      -o "com.docker.network.bridge.name=$KIND_NETWORK_BRIDGE" \
      -o com.docker.network.bridge.enable_ip_masquerade=false "$KIND_NETWORK" >/dev/null
  fi
  iptables -w -N "$KIND_FORWARD_CHAIN" 2>/dev/null || iptables -w -F "$KIND_FORWARD_CHAIN"
  iptables -w -A "$KIND_FORWARD_CHAIN" -i "$KIND_NETWORK_BRIDGE" -o "$KIND_NETWORK_BRIDGE" -j ACCEPT
  iptables -w -A "$KIND_FORWARD_CHAIN" -i "$KIND_NETWORK_BRIDGE" -j DROP
  iptables -w -A "$KIND_FORWARD_CHAIN" -o "$KIND_NETWORK_BRIDGE" -j DROP
  iptables -w -C FORWARD -j "$KIND_FORWARD_CHAIN" 2>/dev/null || iptables -w -I FORWARD -j "$KIND_FORWARD_CHAIN"
  # A node's network namespace takes the host's ip_forward when the engine makes it, and kubeadm (and the
  # routes between nodes' pods) want it on; Docker turns it on when it manages iptables, this engine does
  # not. The value found is kept and put back by kind-down. (It was on only while the local cluster ran,
  # so a kind cluster made after cluster-down failed kubeadm's preflight.)
  [[ -f $KIND_IP_FORWARD_SAVED ]] || sysctl -n net.ipv4.ip_forward >"$KIND_IP_FORWARD_SAVED"
  sysctl -qw net.ipv4.ip_forward=1
}

remove_kind_network_filter() {
  while iptables -w -D FORWARD -j "$KIND_FORWARD_CHAIN" 2>/dev/null; do :; done
  iptables -w -F "$KIND_FORWARD_CHAIN" 2>/dev/null || true
  iptables -w -X "$KIND_FORWARD_CHAIN" 2>/dev/null || true
  # ip_forward as found, unless the local cluster runs (it turned it on too, and puts back what it found).
  if [[ -f $KIND_IP_FORWARD_SAVED ]]; then
    [[ -f /run/marina-cluster/sysctl.saved ]] || sysctl -qw net.ipv4.ip_forward="$(<"$KIND_IP_FORWARD_SAVED")"
    rm -f "$KIND_IP_FORWARD_SAVED"
  fi
}

# stop_kind_dockerd: stops the engine by its pid and releases what it leaves mounted.
stop_kind_dockerd() {
  local pid i target
  if pid=$(kind_dockerd_pid); then
    log "stopping the kind Docker engine (pid $pid)"
    kill "$pid"
    for ((i = 0; i < 300; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  for target in $(findmnt -rn -o TARGET | grep -E "^($KIND_DOCKER_EXEC_ROOT|$KIND_DOCKER_DATA_ROOT)/" | sort -r); do
    umount "$target" 2>/dev/null || umount -l "$target" || true
  done
}
