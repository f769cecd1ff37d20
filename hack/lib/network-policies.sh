# NetworkPolicy enforcement for the local cluster (sourced by cluster-up, cluster-down and network-policies-up).
#
# The bridge plugin connects pods but enforces no NetworkPolicy. sigs.k8s.io/kube-network-policies does, as a
# host process beside it: the first packet of each new connection to or from a pod is sent to an nfqueue, and
# the enforcer answers accept or drop from the NetworkPolicies it watches (a pod no policy selects is always
# accepted). Traffic the node's root user sends (kubelet probes, the tests on this host) is not queued, nor are
# packets of established connections.
#
# Upstream puts those packets on the queue with an nftables table of its own (inet kube-network-policies) whose
# rules use the `queue` expression. Kernels built without CONFIG_NFT_QUEUE (the 6.18 "fc" kernels of these
# machines have CONFIG_NETFILTER_XT_TARGET_NFQUEUE and CONFIG_NFT_COMPAT but not CONFIG_NFT_QUEUE, and load no
# modules) refuse that table with ENOENT; the enforcer then still listens on its queue and retries the table.
# There, the same steering is an iptables chain of ours (mangle POSTROUTING -> $NETPOL_CHAIN, NFQUEUE target):
# it queues every new pod connection rather than only those of policy-selected pods (upstream's set of their
# addresses lives in the table that cannot be made), and the enforcer accepts the unselected ones. Without a
# listener on the queue, queued packets are dropped, as with upstream's default (--fail-open=false): a stopped
# enforcer shows as a cluster whose pods cannot connect, never as policies silently not enforced.
#
# Upstream ships it as a DaemonSet and its command only knows the in-cluster configuration (no --kubeconfig).
# So it runs in a mount namespace of its own where /run is $NETPOL_ROOT, which holds what a pod would get: a
# ServiceAccount token, the cluster CA and the namespace; KUBERNETES_SERVICE_HOST/PORT point at the API server.
# Nothing on the host changes but that nftables table or iptables chain; cluster-down removes both.
# shellcheck shell=bash

NETPOL=kube-network-policies                     # component name (PID file, log)
NETPOL_BIN=$MARINA_CACHE/kube-network-policies-$KUBE_NETWORK_POLICIES_VERSION/kube-network-policies
NETPOL_TABLE=kube-network-policies               # its nftables table (family inet)
NETPOL_QUEUE=100                                 # its nfqueue number (upstream's default)
NETPOL_METRICS=127.0.0.1:9080                    # its Prometheus metrics
NETPOL_ROOT=$RUN_DIR/kube-network-policies       # the process's /run: secrets/kubernetes.io/serviceaccount/*
NETPOL_TOKEN_DURATION=8760h                      # its ServiceAccount token's lifetime (a new one each start)
NETPOL_CHAIN=MARINA-NETPOL                       # the iptables (mangle) steering chain on kernels without nft queue

# netpol_preflight: the kernel and tools it needs (nf_tables, nfnetlink_queue, the nft command).
netpol_preflight() {
  command -v nft >/dev/null || die "'nft' is missing (the nftables package); run hack/install-deps.sh"
  command -v unshare >/dev/null || die "'unshare' is missing (util-linux); run hack/install-deps.sh"
  nft list tables >/dev/null 2>&1 || die "this kernel has no nf_tables (NetworkPolicy enforcement needs it)"
  [[ -e /proc/net/netfilter/nfnetlink_queue ]] || modprobe nfnetlink_queue 2>/dev/null \
    || die "this kernel has no nfnetlink_queue (NetworkPolicy enforcement needs it)"
}

# nft_queue_supported: whether nftables' `queue` expression works here (upstream's own table needs it). Tried
# on a base-less chain of a throw-away table, which no packet ever traverses.
nft_queue_supported() {
  local table=marina-queue-probe ok=1
  nft add table inet "$table" && nft add chain inet "$table" probe \
    && nft add rule inet "$table" probe queue num "$NETPOL_QUEUE" bypass 2>/dev/null || ok=0
  nft delete table inet "$table" 2>/dev/null || true
  ((ok))
}

# netpol_queue_bound: the enforcer listens on its queue (a line for it in nfnetlink_queue's table).
netpol_queue_bound() {
  awk -v q="$NETPOL_QUEUE" '$1 == q {found = 1} END {exit !found}' /proc/net/netfilter/nfnetlink_queue
}

# netpol_steer: the iptables steering chain (see above), hooked first into mangle POSTROUTING: after DNAT, so a
# Service's traffic is seen with its pod's address, and before any SNAT.
netpol_steer() {
  iptables -t mangle -N "$NETPOL_CHAIN" 2>/dev/null || iptables -t mangle -F "$NETPOL_CHAIN"
  iptables -t mangle -A "$NETPOL_CHAIN" -m conntrack --ctstate ESTABLISHED,RELATED -j RETURN
  iptables -t mangle -A "$NETPOL_CHAIN" -m owner --uid-owner 0 -j RETURN
  iptables -t mangle -A "$NETPOL_CHAIN" -s "$POD_CIDR" -j NFQUEUE --queue-num "$NETPOL_QUEUE"
  iptables -t mangle -A "$NETPOL_CHAIN" -d "$POD_CIDR" -j NFQUEUE --queue-num "$NETPOL_QUEUE"
  iptables -t mangle -C POSTROUTING -j "$NETPOL_CHAIN" 2>/dev/null \
    || iptables -t mangle -I POSTROUTING 1 -j "$NETPOL_CHAIN"
}

netpol_unsteer() {
  while iptables -t mangle -D POSTROUTING -j "$NETPOL_CHAIN" 2>/dev/null; do :; done
  iptables -t mangle -F "$NETPOL_CHAIN" 2>/dev/null || true
  iptables -t mangle -X "$NETPOL_CHAIN" 2>/dev/null || true
}

# netpol_delete_table: removes the enforcer's nftables table (a leftover of a killed run would keep queueing
# the policy-selected pods' packets to a queue nobody reads, which drops them).
netpol_delete_table() {
  command -v nft >/dev/null || return 0
  if nft list table inet "$NETPOL_TABLE" >/dev/null 2>&1; then
    log "deleting nftables table inet $NETPOL_TABLE"
    nft delete table inet "$NETPOL_TABLE"
  fi
}

# netpol_credentials: its ServiceAccount (hack/addons/kube-network-policies.yaml) and a token for it, where
# client-go's in-cluster configuration reads them.
netpol_credentials() {
  local dir=$NETPOL_ROOT/secrets/kubernetes.io/serviceaccount
  kubectl_local apply -f "$MARINA_ROOT/hack/addons/kube-network-policies.yaml" >/dev/null
  install -d -m 0700 "$NETPOL_ROOT" "$dir"
  (umask 077 && kubectl_local -n kube-system create token "$NETPOL" --duration "$NETPOL_TOKEN_DURATION" \
    >"$dir/token.tmp")
  mv -f "$dir/token.tmp" "$dir/token"
  install -m 0644 "$STATE_DIR/pki/ca.crt" "$dir/ca.crt"
  printf kube-system >"$dir/namespace"
}

netpol_ready() { nft list chain inet "$NETPOL_TABLE" postrouting >/dev/null 2>&1; }

# start_network_policies: (re)starts the enforcer and waits until it filters: upstream's table in place, or on a
# kernel without nft queue, the enforcer listening on its queue and then our steering chain in place.
start_network_policies() {
  netpol_preflight
  [[ -x $NETPOL_BIN ]] || die "$NETPOL_BIN is missing; run hack/build-binaries.sh network_policies"
  netpol_credentials
  netpol_unsteer
  netpol_delete_table
  # --netfilter-bug-1766-fix: only for kernels before 6.12. --disable-nri: containerd 1.6 has no NRI.
  start "$NETPOL" env KUBERNETES_SERVICE_HOST="$NODE_IP" KUBERNETES_SERVICE_PORT="$API_PORT" \
    unshare --mount --propagation private -- \
    sh -c 'mount --bind "$0" /run && exec "$@"' "$NETPOL_ROOT" \
    "$NETPOL_BIN" --hostname-override "$NODE_NAME" --nfqueue-id "$NETPOL_QUEUE" \
    --metrics-bind-address "$NETPOL_METRICS" --netfilter-bug-1766-fix="$(netpol_needs_1766_fix)" \
    --disable-nri --v=2
  if nft_queue_supported; then
    wait_for "$NETPOL rules (nftables table inet $NETPOL_TABLE)" 60 netpol_ready
  else
    log "this kernel has no nftables queue expression (CONFIG_NFT_QUEUE): steering with iptables chain $NETPOL_CHAIN"
    wait_for "$NETPOL listening on nfqueue $NETPOL_QUEUE" 60 netpol_queue_bound
    netpol_steer
  fi
}

# netpol_needs_1766_fix: true before Linux 6.12 (netfilter bug 1766: UDP DNS racing conntrack).
netpol_needs_1766_fix() {
  local major minor
  IFS=. read -r major minor _ <<<"$(uname -r)"
  if ((major > 6 || (major == 6 && minor >= 12))); then echo false; else echo true; fi
}

# stop_network_policies: our steering chain first (so nothing is queued to a queue about to lose its reader),
# then SIGINT (on which the enforcer deletes its table itself) and, after its 5 s grace period or a kill, the
# table.
stop_network_policies() {
  local pid i
  netpol_unsteer
  if pid=$(pid_of "$NETPOL"); then
    log "stopping $NETPOL (pid $pid)"
    kill -INT "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$RUN_DIR/$NETPOL.pid"
  netpol_delete_table
}
