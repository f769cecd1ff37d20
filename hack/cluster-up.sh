#!/usr/bin/env bash
# Brings up a one-node Kubernetes cluster from source on this machine (see hack/lib/cluster.sh for the layout):
# containerd (own socket and roots), etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubelet,
# kube-proxy (iptables), CoreDNS and the NetworkPolicy enforcer kube-network-policies (hack/lib/network-policies.sh).
# Idempotent: a healthy cluster is left alone; leftovers of a killed run (a stale nftables table too) are
# cleaned by hack/cluster-down.sh first. Prints the `export KUBECONFIG=...` line at the end.
set -euo pipefail
HACK="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=hack/lib/cluster.sh
source "$HACK/lib/cluster.sh"
# shellcheck source=hack/lib/certs.sh
source "$HACK/lib/certs.sh"
PKI=$STATE_DIR/pki
STARTED=$SECONDS

all_running() {
  local c
  for c in "${COMPONENTS[@]}"; do pid_of "$c" >/dev/null || return 1; done
}

# The checkout's own copy of the admin kubeconfig and kubectl, also when another checkout started the cluster.
link_checkout() {
  mkdir -p "$CLUSTER_DIR/bin"
  install -m 600 "$ADMIN_KUBECONFIG" "$KUBECONFIG_PATH"
  ln -sf "$KUBE_BIN/kubectl" "$CLUSTER_DIR/bin/kubectl"
  ln -sfn "$LOG_DIR" "$CLUSTER_DIR/logs"
}

print_usage_hint() {
  echo "cluster is up (node $NODE_NAME, API https://$NODE_IP:$API_PORT). Use it with:"
  echo "  export KUBECONFIG=$KUBECONFIG_PATH PATH=$CLUSTER_DIR/bin:\$PATH"
}

preflight() {
  require_root
  require_go
  [[ $(stat -fc %T /sys/fs/cgroup) == tmpfs || $(stat -fc %T /sys/fs/cgroup) == cgroup2fs ]] \
    || die "no cgroup file system mounted at /sys/fs/cgroup"
  local s
  for s in cpu cpuacct cpuset memory pids; do
    [[ $(stat -fc %T /sys/fs/cgroup) == cgroup2fs || -d /sys/fs/cgroup/$s ]] \
      || die "cgroup v1 controller '$s' is not mounted under /sys/fs/cgroup"
  done
  for s in containerd runc ctr openssl iptables ip findmnt ss curl python3; do
    command -v "$s" >/dev/null || die "'$s' is missing; run hack/install-deps.sh"
  done
  netpol_preflight
  [[ -x /usr/lib/cni/bridge ]] || die "CNI plugins missing in /usr/lib/cni; run hack/install-deps.sh"
  local free_gb
  free_gb=$(df -P --block-size=1G /var/lib | awk 'NR==2 {print $4}')
  ((free_gb >= 10)) || die "only ${free_gb} GiB free under /var/lib; the cluster and its images need 10 GiB"
  free_gb=$(mkdir -p "$MARINA_CACHE" && df -P --block-size=1G "$MARINA_CACHE" | awk 'NR==2 {print $4}')
  ((free_gb >= 10)) || die "only ${free_gb} GiB free for $MARINA_CACHE; a cold build needs 10 GiB (with Go's caches)"
  local port busy=()
  for port in "${CLUSTER_PORTS[@]}"; do
    ss -Hltn "sport = :$port" | grep -q . && busy+=("$port")
  done
  ((${#busy[@]} == 0)) || die "ports in use: ${busy[*]} (another Kubernetes? see: ss -ltnp)"
  local route
  for route in "$POD_CIDR" "$SERVICE_CIDR"; do
    if ip -4 route show to match "${route%/*}" | grep -v "dev $BRIDGE" | grep -qv '^default'; then
      die "address range $route already routed on this machine: $(ip -4 route show to match "${route%/*}")"
    fi
  done
}

setup_network() {
  [[ $(findmnt -no PROPAGATION /) == shared ]] || mount --make-rshared /
  ip link show "$BRIDGE" >/dev/null 2>&1 || ip link add "$BRIDGE" type bridge
  ip addr replace "$NODE_IP/${POD_CIDR#*/}" dev "$BRIDGE"
  ip link set "$BRIDGE" up
  # Host-to-ClusterIP traffic leaves with the node address and never follows the default route.
  ip route replace "$SERVICE_CIDR" dev "$BRIDGE" src "$NODE_IP"
  mkdir -p "$RUN_DIR"
  # The kubelet and we change these; cluster-down puts the saved values back.
  [[ -f $RUN_DIR/sysctl.saved ]] || sysctl "${SAVED_SYSCTLS[@]}" >"$RUN_DIR/sysctl.saved"
  sysctl -qw net.ipv4.ip_forward=1  # pod -> Service -> pod is routed through the node
  # Forwarding is only for the pod range: anything crossing its border is dropped, so nothing leaves the node.
  iptables -N "$FORWARD_CHAIN" 2>/dev/null || iptables -F "$FORWARD_CHAIN"
  iptables -A "$FORWARD_CHAIN" -s "$POD_CIDR" -d "$POD_CIDR" -j ACCEPT
  iptables -A "$FORWARD_CHAIN" -s "$POD_CIDR" -j DROP
  iptables -A "$FORWARD_CHAIN" -d "$POD_CIDR" -j DROP
  iptables -C FORWARD -j "$FORWARD_CHAIN" 2>/dev/null || iptables -I FORWARD 1 -j "$FORWARD_CHAIN"
  mkdir -p "$STATE_DIR/cni/net.d"
  cat >"$STATE_DIR/cni/net.d/10-marina.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "marina",
  "plugins": [
    {
      "type": "bridge", "bridge": "$BRIDGE", "isGateway": true, "ipMasq": false, "hairpinMode": true,
      "ipam": {
        "type": "host-local", "dataDir": "$STATE_DIR/cni/ipam",
        "ranges": [[{"subnet": "$POD_CIDR", "gateway": "$NODE_IP"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    }
  ]
}
EOF
}

start_containerd() {
  mkdir -p "$STATE_DIR/containerd" "$CONTAINERD_STATE"
  cat >"$STATE_DIR/containerd.toml" <<EOF
version = 2
root = "$STATE_DIR/containerd"
state = "$CONTAINERD_STATE"
[grpc]
  address = "$CONTAINERD_SOCK"
[ttrpc]
  address = "$CONTAINERD_SOCK.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "$STATE_DIR/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  stream_server_address = "127.0.0.1"
  enable_selinux = false
  # Lowering oom_score_adj needs CAP_SYS_RESOURCE, which sandboxed machines may not grant even to root.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$CONTAINERD_STATE/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$STATE_DIR/cni/net.d"
EOF
  start containerd containerd --config "$STATE_DIR/containerd.toml"
  wait_for "containerd socket" 30 ctr --address "$CONTAINERD_SOCK" version
  # The sandbox image must be present before the kubelet creates the first pod (there is no registry).
  python3 "$HACK/lib/oci_image.py" --name "$PAUSE_IMAGE" --file "$MARINA_CACHE/pause/pause:/pause" \
    --entrypoint /pause --user 65535:65535 --output "$MARINA_CACHE/images/pause.tar"
  python3 "$HACK/lib/oci_image.py" --name marina.local/coredns:dev --user 65532:65532 \
    --file "$COREDNS_BIN/coredns:/coredns" --entrypoint /coredns --output "$MARINA_CACHE/images/coredns.tar"
  local image
  for image in pause coredns; do
    ctr_k8s images import "$MARINA_CACHE/images/$image.tar" >/dev/null
  done
}

start_control_plane() {
  start etcd "$ETCD_BIN/etcd" --name "$NODE_NAME" --data-dir "$STATE_DIR/etcd" \
    --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
    --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
    --initial-cluster "$NODE_NAME=http://127.0.0.1:2380" \
    --quota-backend-bytes 2147483648 --log-level warn
  wait_for "etcd health" 60 curl -fsS http://127.0.0.1:2379/health

  start kube-apiserver "$KUBE_BIN/kube-apiserver" \
    --etcd-servers http://127.0.0.1:2379 \
    --bind-address "$NODE_IP" --advertise-address "$NODE_IP" --secure-port "$API_PORT" \
    --tls-cert-file "$PKI/kube-apiserver.crt" --tls-private-key-file "$PKI/kube-apiserver.key" \
    --client-ca-file "$PKI/ca.crt" \
    --kubelet-client-certificate "$PKI/apiserver-kubelet-client.crt" \
    --kubelet-client-key "$PKI/apiserver-kubelet-client.key" \
    --kubelet-certificate-authority "$PKI/ca.crt" --kubelet-preferred-address-types InternalIP \
    --service-account-key-file "$PKI/sa.pub" --service-account-signing-key-file "$PKI/sa.key" \
    --service-account-issuer "https://kubernetes.default.svc.$CLUSTER_DOMAIN" \
    --service-cluster-ip-range "$SERVICE_CIDR" --service-node-port-range 30000-32767 \
    --authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction \
    --allow-privileged=true --profiling=false --v=1 "${FRONT_PROXY_FLAGS[@]}"
  write_kubeconfig "$ADMIN_KUBECONFIG" admin
  wait_for "kube-apiserver readiness" 120 curl -fsS --cacert "$PKI/ca.crt" \
    --cert "$PKI/admin.crt" --key "$PKI/admin.key" "https://$NODE_IP:$API_PORT/readyz"

  local c
  for c in kube-controller-manager kube-scheduler kube-proxy kubelet-client; do
    write_kubeconfig "$STATE_DIR/$c.kubeconfig" "$c"
  done
  start kube-controller-manager "$KUBE_BIN/kube-controller-manager" \
    --kubeconfig "$STATE_DIR/kube-controller-manager.kubeconfig" \
    --authentication-kubeconfig "$STATE_DIR/kube-controller-manager.kubeconfig" \
    --authorization-kubeconfig "$STATE_DIR/kube-controller-manager.kubeconfig" \
    --bind-address 127.0.0.1 --leader-elect=false --use-service-account-credentials=true \
    --service-account-private-key-file "$PKI/sa.key" --root-ca-file "$PKI/ca.crt" \
    --cluster-signing-cert-file "$PKI/ca.crt" --cluster-signing-key-file "$PKI/ca.key" \
    --service-cluster-ip-range "$SERVICE_CIDR" --cluster-name marina --profiling=false --v=1 \
    --horizontal-pod-autoscaler-sync-period=5s
  # (HPAs read the Metrics API every 5 s, not 15, so they act on metrics-server's new readings, every 10 s
  # (hack/addons/metrics-server.yaml), within 5 s; the autoscaling e2e test waits for both.)
  start kube-scheduler "$KUBE_BIN/kube-scheduler" \
    --kubeconfig "$STATE_DIR/kube-scheduler.kubeconfig" \
    --authentication-kubeconfig "$STATE_DIR/kube-scheduler.kubeconfig" \
    --authorization-kubeconfig "$STATE_DIR/kube-scheduler.kubeconfig" \
    --bind-address 127.0.0.1 --leader-elect=false --profiling=false --v=1
}

start_node() {
  printf 'options ndots:5\n' >"$STATE_DIR/resolv.conf"  # pods get only cluster DNS, no host resolvers
  cat >"$STATE_DIR/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
tlsCertFile: $PKI/kubelet-server.crt
tlsPrivateKeyFile: $PKI/kubelet-server.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $PKI/ca.crt}
authorization: {mode: Webhook}
containerRuntimeEndpoint: unix://$CONTAINERD_SOCK
cgroupDriver: cgroupfs
failSwapOn: false
clusterDNS: [$DNS_SERVICE_IP]
clusterDomain: $CLUSTER_DOMAIN
resolvConf: $STATE_DIR/resolv.conf
podCIDR: $POD_CIDR
maxPods: 110
serializeImagePulls: false
# Imported images cannot be pulled again (no registry): never garbage-collect them. The thresholds stop the
# periodic collection; the minimum age stops the collection the eviction manager runs under disk pressure
# (below nodefs.available it deleted the sandbox and marina images, and every new pod then tried a registry).
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
imageMinimumGCAge: 87600h
evictionHard: {memory.available: 100Mi, nodefs.available: 1%, nodefs.inodesFree: 1%, imagefs.available: 1%}
EOF
  start kubelet "$KUBE_BIN/kubelet" --config "$STATE_DIR/kubelet.yaml" \
    --kubeconfig "$STATE_DIR/kubelet-client.kubeconfig" --hostname-override "$NODE_NAME" \
    --node-ip "$NODE_IP" --root-dir "$STATE_DIR/kubelet" --cert-dir "$STATE_DIR/kubelet/pki" --v=1

  cat >"$STATE_DIR/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clientConnection: {kubeconfig: $STATE_DIR/kube-proxy.kubeconfig}
hostnameOverride: $NODE_NAME
bindAddress: $NODE_IP
clusterCIDR: $POD_CIDR
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
nodePortAddresses: ["$NODE_IP/32"]
# Leave the host's conntrack and route_localnet settings alone.
conntrack: {maxPerCore: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
iptables: {localhostNodePorts: false}
EOF
  start kube-proxy "$KUBE_BIN/kube-proxy" --config "$STATE_DIR/kube-proxy.yaml" --v=1
}

node_ready() {
  [[ $(kubectl_local get node "$NODE_NAME" \
    -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null) == True ]]
}

start_dns() {
  sed -e "s/@DNS_SERVICE_IP@/$DNS_SERVICE_IP/; s/@CLUSTER_DOMAIN@/$CLUSTER_DOMAIN/" \
    "$HACK/addons/coredns.yaml" | kubectl_local apply -f - >/dev/null
  wait_for "CoreDNS rollout" 180 kubectl_local -n kube-system rollout status deployment/coredns --timeout=5s
  wait_for "cluster DNS answer (kubernetes.default.svc.$CLUSTER_DOMAIN from $DNS_SERVICE_IP)" 60 \
    python3 "$HACK/lib/dns_query.py" "$DNS_SERVICE_IP" "kubernetes.default.svc.$CLUSTER_DOMAIN" "$API_SERVICE_IP"
}

main() {
  require_root
  lock cluster 8
  if all_running && node_ready; then
    link_checkout
    print_usage_hint
    return 0
  fi
  if compgen -G "$RUN_DIR/*.pid" >/dev/null || ip link show "$BRIDGE" >/dev/null 2>&1 || [[ -d $STATE_DIR/pki ]]; then
    log "found leftovers of an earlier run; cleaning them first"
    PURGE=0 bash "$HACK/cluster-down.sh"  # leftovers go, MinIO's kept data never
  fi
  preflight
  bash "$HACK/build-binaries.sh" pause kube etcd coredns network_policies
  if [[ -d $LOG_DIR ]]; then rm -rf "$LOG_DIR.prev" && mv "$LOG_DIR" "$LOG_DIR.prev"; fi
  mkdir -p "$STATE_DIR" "$LOG_DIR" "$RUN_DIR" "$CLUSTER_DIR/bin" "$MARINA_CACHE/images"
  ln -sfn "$LOG_DIR" "$CLUSTER_DIR/logs"
  log "starting the cluster (state $STATE_DIR, logs $LOG_DIR)"
  local dir
  for dir in "${HOST_DIRS[@]}"; do [[ -e $dir ]] || echo "$dir" >>"$RUN_DIR/created-dirs"; done
  generate_pki
  front_proxy_pki
  setup_network
  start_containerd
  start_control_plane
  start_node
  wait_for "kubelet: node $NODE_NAME Ready" 180 node_ready
  start_dns
  start_network_policies
  log "cluster ready in $((SECONDS - STARTED))s"
  link_checkout
  print_usage_hint
}

main "$@"
