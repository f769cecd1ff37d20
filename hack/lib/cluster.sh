# Layout and addresses of the local cluster (sourced by the cluster scripts, never run).
# Everything the cluster owns lives under these paths and ranges, so cluster-down can remove exactly that.
# shellcheck shell=bash
# shellcheck source=hack/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

STATE_DIR=/var/lib/marina-cluster          # certificates, etcd data, kubelet and containerd roots
LOG_DIR=$STATE_DIR/logs                   # one log per component; kept by cluster-down for post-mortems
VOLUMES_DIR=$STATE_DIR/volumes            # hostPath volumes (MinIO's four drives) and its root credentials: kept unless PURGE=1
MINIO_CREDENTIALS_FILE=$VOLUMES_DIR/minio-root-credentials  # what MinIO's kept data is encrypted with (hack/minio-up.sh)
RUN_DIR=/run/marina-cluster               # PID files, saved sysctls
CONTAINERD_STATE=/run/marina-containerd
CONTAINERD_SOCK=$CONTAINERD_STATE/containerd.sock
CLUSTER_DIR=$MARINA_ROOT/.cluster         # git-ignored: kubeconfig and kubectl for users
KUBECONFIG_PATH=$CLUSTER_DIR/kubeconfig
# The cluster is one per machine but checkouts are many: the admin kubeconfig lives with the cluster's state
# and every checkout's .cluster/kubeconfig is a copy of it.
ADMIN_KUBECONFIG=$STATE_DIR/admin.kubeconfig

NODE_NAME=marina
BRIDGE=marina0
POD_CIDR=10.244.0.0/24
NODE_IP=10.244.0.1                        # the bridge's gateway address doubles as the node (and API) address
SERVICE_CIDR=10.96.0.0/24
API_SERVICE_IP=10.96.0.1
DNS_SERVICE_IP=10.96.0.10
CLUSTER_DOMAIN=cluster.local
API_PORT=6443
FORWARD_CHAIN=MARINA-FORWARD
# Ports the components listen on (all on loopback or $NODE_IP); preflight wants them free.
CLUSTER_PORTS=(6443 2379 2380 10248 10249 10250 10256 10257 10259 9080)
# Start order; cluster-down stops them in reverse.
COMPONENTS=(containerd etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kube-network-policies)

# Host settings the cluster changes (ip_forward by cluster-up, the rest by the kubelet), restored by cluster-down.
SAVED_SYSCTLS=(net.ipv4.ip_forward vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops
  kernel.keys.root_maxkeys kernel.keys.root_maxbytes)

# Fixed host folders the kubelet and CNI use whatever their configuration; removed by cluster-down only when
# cluster-up found them absent.
HOST_DIRS=(/var/log/pods /var/log/containers /var/lib/kubelet /var/lib/cni)

KUBE_BIN=$MARINA_CACHE/bin-$KUBE_VERSION
ETCD_BIN=$MARINA_CACHE/etcd-$ETCD_VERSION
COREDNS_BIN=$MARINA_CACHE/coredns-$COREDNS_VERSION
MINIO_BIN=$MARINA_CACHE/minio-$MINIO_VERSION
# Images built here are named under marina.local, which never resolves: a missing one fails on this machine
# instead of reaching a registry (containerd reads a short name such as marina:dev as a Docker Hub one).
PAUSE_IMAGE=marina.local/marina-pause:dev

# read_kept_credentials FILE: MinIO's root credentials as hack/minio-up.sh keeps them (KEY=value lines), into
# KEPT_ACCESS and KEPT_SECRET_KEY; dies when FILE lacks either.
read_kept_credentials() {
  local key value
  KEPT_ACCESS='' KEPT_SECRET_KEY=''
  while IFS='=' read -r key value; do
    case $key in
      AWS_ACCESS_KEY_ID) KEPT_ACCESS=$value ;;
      AWS_SECRET_ACCESS_KEY) KEPT_SECRET_KEY=$value ;;
    esac
  done <"$1"
  [[ -n $KEPT_ACCESS && -n $KEPT_SECRET_KEY ]] || die "$1 does not hold AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
}

ctr_k8s() { ctr --address "$CONTAINERD_SOCK" --namespace k8s.io "$@"; }
kubectl_local() { "$KUBE_BIN/kubectl" --kubeconfig "$ADMIN_KUBECONFIG" "$@"; }

# pid_of NAME: the PID recorded for a component, printed only while that process still runs it.
pid_of() {
  local file="$RUN_DIR/$1.pid" pid
  [[ -f $file ]] || return 1
  pid=$(<"$file")
  [[ -n $pid && -r /proc/$pid/cmdline ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$1" || return 1
  echo "$pid"
}

require_root() { ((EUID == 0)) || die "run as root (the kubelet, containerd and the network setup need it)"; }

# The aggregation layer (extension API servers such as metrics-server, hack/monitoring-up.sh): the API
# server proxies to them with a client certificate of its own front-proxy CA and passes the user in
# X-Remote-* headers, which they trust only from that CA and that name.
FRONT_PROXY_FLAGS=(
  --requestheader-client-ca-file "$STATE_DIR/pki/front-proxy-ca.crt"
  --requestheader-allowed-names front-proxy-client
  --requestheader-username-headers X-Remote-User
  --requestheader-group-headers X-Remote-Group
  --requestheader-extra-headers-prefix X-Remote-Extra-
  --proxy-client-cert-file "$STATE_DIR/pki/front-proxy-client.crt"
  --proxy-client-key-file "$STATE_DIR/pki/front-proxy-client.key"
  --enable-aggregator-routing=true
)

# front_proxy_pki: the front-proxy CA (separate from the cluster CA, as kubeadm does) and its client cert.
front_proxy_pki() {
  local pki=$STATE_DIR/pki
  openssl ecparam -name prime256v1 -genkey -noout -out "$pki/front-proxy-ca.key" 2>/dev/null
  openssl req -x509 -new -key "$pki/front-proxy-ca.key" -subj "/CN=marina-front-proxy-ca" -days 3650 \
    -out "$pki/front-proxy-ca.crt" -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature"
  openssl ecparam -name prime256v1 -genkey -noout -out "$pki/front-proxy-client.key" 2>/dev/null
  openssl req -new -key "$pki/front-proxy-client.key" -subj "/CN=front-proxy-client" \
    -out "$pki/front-proxy-client.csr" 2>/dev/null
  openssl x509 -req -in "$pki/front-proxy-client.csr" -CA "$pki/front-proxy-ca.crt" \
    -CAkey "$pki/front-proxy-ca.key" -CAcreateserial -days 3650 -out "$pki/front-proxy-client.crt" \
    -extfile <(printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n') 2>/dev/null
  rm -f "$pki/front-proxy-client.csr"
}

# start NAME COMMAND...: runs a component in its own session with its log under $LOG_DIR and a PID file.
start() {
  local name=$1; shift
  setsid "$@" >>"$LOG_DIR/$name.log" 2>&1 </dev/null 7>&- 8>&- 9>&- &
  echo $! >"$RUN_DIR/$name.pid"
  log "started $name (pid $!, log $LOG_DIR/$name.log)"
}

# wait_for WHAT SECONDS COMMAND...: polls COMMAND until it succeeds; on timeout shows the relevant log.
wait_for() {
  local what=$1 timeout=$2; shift 2
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      local name=${what%% *}
      [[ -f $LOG_DIR/$name.log ]] && tail -n 30 "$LOG_DIR/$name.log" >&2
      die "timed out after ${timeout}s waiting for $what (logs in $LOG_DIR)"
    fi
    sleep 1
  done
}

# shellcheck source=hack/lib/network-policies.sh
source "$(dirname "${BASH_SOURCE[0]}")/network-policies.sh"
