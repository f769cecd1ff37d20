#!/usr/bin/env bash
# Stops the local cluster and removes what hack/cluster-up.sh created: its processes (by PID file), pod
# containers and cgroups, mounts under its folders, pod network namespaces, the bridge, its iptables chains,
# the NetworkPolicy enforcer's nftables table and its state. Idempotent and safe after a killed run. Keeps
# $LOG_DIR, the build cache (~/.cache/marina) and $VOLUMES_DIR: MinIO's stored datasets and models with the
# root credentials that read them, found again by the next cluster-up and deploy. PURGE=1 deletes those too.
set -euo pipefail
HACK="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=hack/lib/cluster.sh
source "$HACK/lib/cluster.sh"
require_root
PURGE=${PURGE:-0}
[[ $PURGE == 0 || $PURGE == 1 ]] || die "PURGE must be 0 or 1, got '$PURGE'"

# stop NAME...: SIGTERM to each running component, SIGKILL to those still running after 3 s (all state is
# deleted next, so nothing needs a graceful shutdown).
stop() {
  local name pid pids=() i
  for name in "$@"; do
    if pid=$(pid_of "$name"); then
      log "stopping $name (pid $pid)"
      kill "$pid" 2>/dev/null && pids+=("$pid")
    fi
    rm -f "$RUN_DIR/$name.pid"
  done
  for ((i = 0; i < 30; i++)); do
    any_alive "${pids[@]}" || return 0
    sleep 0.1
  done
  for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
}

any_alive() {
  local pid
  for pid in "$@"; do kill -0 "$pid" 2>/dev/null && return 0; done
  return 1
}

# Pod containers: kill their tasks through our containerd, then any shim still bound to our socket.
stop_pods() {
  if ctr --address "$CONTAINERD_SOCK" version >/dev/null 2>&1; then
    local task
    for task in $(ctr_k8s tasks ls -q 2>/dev/null); do
      ctr_k8s tasks kill -a -s SIGKILL "$task" >/dev/null 2>&1 || true
    done
    sleep 1
    for task in $(ctr_k8s tasks ls -q 2>/dev/null); do ctr_k8s tasks delete -f "$task" >/dev/null 2>&1 || true; done
  fi
  local pid
  for pid in $(pgrep -f -- "-address $CONTAINERD_SOCK" || true); do kill -9 "$pid" 2>/dev/null || true; done
  # Anything left in the kubelet's pod cgroups belongs to our pods.
  local procs
  for procs in $(find /sys/fs/cgroup/*/kubepods -name cgroup.procs 2>/dev/null); do
    for pid in $(<"$procs"); do kill -9 "$pid" 2>/dev/null || true; done
  done
}

remove_cgroups() {
  local root
  for root in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods; do
    [[ -d $root ]] || continue
    find "$root" -depth -type d -exec rmdir {} \; 2>/dev/null || true
  done
}

unmount_all() {
  local prefix target
  for prefix in "$STATE_DIR" "$CONTAINERD_STATE" "$RUN_DIR"; do
    # Deepest first; lazily if a mount is still busy.
    for target in $(findmnt -rn -o TARGET | grep -E "^$prefix(/|$)" | sort -r); do
      umount "$target" 2>/dev/null || umount -l "$target" 2>/dev/null || true
    done
  done
}

# Pod network namespaces are the cni-* ones whose eth0 holds an address from our pod range.
remove_pod_networks() {
  local ns
  for ns in $(ip netns list 2>/dev/null | awk '/^cni-/ {print $1}'); do
    if ip -n "$ns" -4 addr show 2>/dev/null | grep -q "inet ${POD_CIDR%.*}\."; then
      ip netns delete "$ns" 2>/dev/null || true
    fi
  done
  # libcni's result cache: our network's entries and the loopback entries of the same sandboxes.
  local result id
  for result in /var/lib/cni/results/marina-*-eth0; do
    [[ -e $result ]] || continue
    id=${result#/var/lib/cni/results/marina-}
    rm -f "$result" "/var/lib/cni/results/cni-loopback-${id%-eth0}-lo"
  done
  local veth
  for veth in $(ip -o link show master "$BRIDGE" 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1); do
    ip link delete "$veth" 2>/dev/null || true
  done
}

# kube-proxy and the kubelet own the KUBE-* chains; they are ours unless another kube-proxy runs here.
clean_iptables() {
  if [[ -x $KUBE_BIN/kube-proxy ]] && ! pgrep -x kube-proxy >/dev/null; then
    "$KUBE_BIN/kube-proxy" --cleanup >/dev/null 2>&1 || true
    local tool table chain rule
    for tool in iptables ip6tables; do
      for table in filter nat mangle; do
        for chain in $($tool -t "$table" -S 2>/dev/null | awk '/^-N KUBE-/ {print $2}'); do
          # Unhook the chain from wherever it is jumped to, then empty it; delete once all are empty.
          while read -r rule; do
            [[ -n $rule ]] && eval "$tool -t $table ${rule/#-A/-D}" 2>/dev/null || true
          done < <($tool -t "$table" -S | grep -E -- "-j $chain( |\$)" | grep -v "^-A $chain " || true)
          $tool -t "$table" -F "$chain" 2>/dev/null || true
        done
        for chain in $($tool -t "$table" -S 2>/dev/null | awk '/^-N KUBE-/ {print $2}'); do
          $tool -t "$table" -X "$chain" 2>/dev/null || true
        done
      done
    done
  fi
  while iptables -D FORWARD -j "$FORWARD_CHAIN" 2>/dev/null; do :; done
  iptables -F "$FORWARD_CHAIN" 2>/dev/null || true
  iptables -X "$FORWARD_CHAIN" 2>/dev/null || true
}

remove_network() {
  ip route del "$SERVICE_CIDR" dev "$BRIDGE" 2>/dev/null || true
  ip link delete "$BRIDGE" 2>/dev/null || true
  if [[ -f $RUN_DIR/sysctl.saved ]]; then
    sysctl -q -p "$RUN_DIR/sysctl.saved" || true
    rm -f "$RUN_DIR/sysctl.saved"
  fi
}

remove_state() {
  local entry
  if [[ -d $STATE_DIR ]]; then
    for entry in "$STATE_DIR"/* "$STATE_DIR"/.[!.]*; do
      [[ -e $entry && $entry != "$LOG_DIR" && $entry != "$LOG_DIR.prev" ]] || continue
      [[ $entry == "$VOLUMES_DIR" && $PURGE != 1 ]] && continue
      rm -rf "$entry"
    done
  fi
  local dir
  if [[ -f $RUN_DIR/created-dirs ]]; then
    while read -r dir; do rm -rf "$dir"; done <"$RUN_DIR/created-dirs"
  fi
  rm -rf "$CONTAINERD_STATE" "$RUN_DIR"
  rm -f "$KUBECONFIG_PATH"
}

main() {
  lock cluster 8
  # The enforcer first (it deletes its nftables table; a leftover one too); then everything but containerd at
  # once; then the pods, while containerd can still kill them; then containerd.
  bash "$HACK/monitoring-down.sh"  # the Prometheus of make monitoring, by its PID
  stop_network_policies
  stop kube-proxy kubelet kube-scheduler kube-controller-manager kube-apiserver etcd
  stop_pods
  stop containerd
  stop_pods  # a killed run may have left shims and pod processes without a containerd
  remove_pod_networks
  unmount_all
  remove_cgroups
  clean_iptables
  remove_network
  remove_state
  if [[ $PURGE == 1 ]]; then
    log "cluster is down; PURGE=1: MinIO's data and root credentials deleted (logs kept in $LOG_DIR)"
  elif [[ -d $VOLUMES_DIR ]]; then
    log "cluster is down; MinIO's data kept in $VOLUMES_DIR (PURGE=1 deletes it; logs kept in $LOG_DIR)"
  else
    log "cluster is down (logs kept in $LOG_DIR)"
  fi
}

main "$@"
