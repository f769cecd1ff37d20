#!/usr/bin/env bash
# Monitoring on the local cluster (`make monitoring`): metrics-server as a pod (kubectl top, HPAs) and a
# Prometheus host process on 127.0.0.1:9090 that finds Marina's serving pods and operator through the API
# (kubernetes_sd, as its own ServiceAccount that may only list pods) and evaluates the shipped rules
# (manifests/monitoring/prometheusrule.yaml). Both built from the pinned Go modules (hack/build-binaries.sh).
# Idempotent: a Prometheus already running with the same configuration is kept, one from an earlier run
# with another configuration (or a stale PID file) is replaced; hack/monitoring-down.sh (run by
# cluster-down) stops it by its PID. Data, logs and PID live with the cluster's (hack/lib/cluster.sh).
# Usage: hack/monitoring-up.sh [prometheus] [metrics-server]   (default both)
# PROMETHEUS_INTERVAL (default 5s) is the scrape and rule interval.
set -euo pipefail
HACK="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=hack/lib/cluster.sh
source "$HACK/lib/cluster.sh"
# shellcheck source=hack/lib/monitoring.sh
source "$HACK/lib/monitoring.sh"
INTERVAL=${PROMETHEUS_INTERVAL:-5s}

kubectl_m() { kubectl_local "$@"; }

aggregation_enabled() {
  [[ -n $(kubectl_m -n kube-system get configmap extension-apiserver-authentication \
    -o jsonpath='{.data.requestheader-client-ca-file}' 2>/dev/null) ]]
}

start_metrics_server() {
  python3 "$HACK/lib/oci_image.py" --name marina.local/metrics-server:dev --user 65532:65532 \
    --file "$METRICS_SERVER_BIN/metrics-server:/metrics-server" --entrypoint /metrics-server \
    --output "$MARINA_CACHE/images/metrics-server.tar"
  ctr_k8s images import "$MARINA_CACHE/images/metrics-server.tar" >/dev/null
  kubectl_m apply -f "$HACK/addons/metrics-server.yaml" >/dev/null
  # A new image under the same tag: restart the pod so it runs the imported one.
  kubectl_m -n kube-system rollout restart deployment/metrics-server >/dev/null
  wait_for "metrics-server rollout" 180 kubectl_m -n kube-system rollout status deployment/metrics-server --timeout=5s
  wait_for "the Metrics API (kubectl top nodes)" 120 kubectl_m top nodes
}

# prometheus_kubeconfig: a kubeconfig holding a token of the prometheus ServiceAccount (list/watch pods).
prometheus_kubeconfig() {
  local token
  token=$(kubectl_m -n marina-monitoring create token prometheus --duration 8760h)
  cat >"$PROMETHEUS_DIR/kubeconfig" <<KUBECONFIG
apiVersion: v1
kind: Config
clusters:
- name: marina
  cluster: {server: "https://$NODE_IP:$API_PORT", certificate-authority: "$STATE_DIR/pki/ca.crt"}
users:
- name: prometheus
  user: {token: "$token"}
contexts:
- name: marina
  context: {cluster: marina, user: prometheus}
current-context: marina
KUBECONFIG
  chmod 600 "$PROMETHEUS_DIR/kubeconfig"
}

# scrape_job NAME POD_NAME_LABEL PORT_NAME HONOR_LABELS: pods whose app.kubernetes.io/name is POD_NAME_LABEL,
# on their container port PORT_NAME, with the labels the rules and the dashboard use (manifests/monitoring).
# The operator's series name the resource's own namespace: honor_labels keeps it over the pod's.
scrape_job() {
  cat <<JOB
  - job_name: $1
    honor_labels: $4
    kubernetes_sd_configs:
      - role: pod
        kubeconfig_file: $PROMETHEUS_DIR/kubeconfig
    relabel_configs:
      - {source_labels: [__meta_kubernetes_pod_label_app_kubernetes_io_name], regex: $2, action: keep}
      - {source_labels: [__meta_kubernetes_pod_container_port_name], regex: $3, action: keep}
      - {source_labels: [__meta_kubernetes_pod_phase], regex: Running, action: keep}
      - {source_labels: [__meta_kubernetes_namespace], target_label: namespace}
      - {source_labels: [__meta_kubernetes_pod_name], target_label: pod}
      - {source_labels: [__meta_kubernetes_pod_label_app_kubernetes_io_instance], target_label: modeldeployment}
      - {source_labels: [__meta_kubernetes_pod_label_marina_dev_track], regex: (.+), target_label: track}
      - {source_labels: [__meta_kubernetes_pod_label_marina_dev_track], regex: "", target_label: track, replacement: stable}
JOB
}

write_config() {
  python3 "$HACK/lib/prometheus_rules.py" "$MARINA_ROOT/manifests/monitoring/prometheusrule.yaml" \
    "$PROMETHEUS_DIR/marina.rules.yaml"
  {
    printf 'global: {scrape_interval: %s, evaluation_interval: %s}\n' "$INTERVAL" "$INTERVAL"
    printf 'rule_files: [%s]\nscrape_configs:\n' "$PROMETHEUS_DIR/marina.rules.yaml"
    scrape_job marina-serving marina http false
    scrape_job marina-operator marina-operator metrics true
  } >"$PROMETHEUS_DIR/prometheus.yml.new"
  "$PROMETHEUS_BIN/promtool" check config "$PROMETHEUS_DIR/prometheus.yml.new" >/dev/null
}

start_prometheus() {
  local pid
  if pid=$(pid_of prometheus) && cmp -s "$PROMETHEUS_DIR/prometheus.yml.new" "$PROMETHEUS_DIR/prometheus.yml" \
    && prometheus_ready; then
    log "Prometheus already running (pid $pid) with this configuration"
    rm -f "$PROMETHEUS_DIR/prometheus.yml.new"
    return 0
  fi
  stop_prometheus  # another configuration, or leftovers of a killed run
  if ss -Hltn "sport = :$PROMETHEUS_PORT" | grep -q .; then
    die "port $PROMETHEUS_PORT is taken by another process (ss -ltnp 'sport = :$PROMETHEUS_PORT')"
  fi
  mv "$PROMETHEUS_DIR/prometheus.yml.new" "$PROMETHEUS_DIR/prometheus.yml"
  start prometheus "$PROMETHEUS_BIN/prometheus" --config.file "$PROMETHEUS_DIR/prometheus.yml" \
    --storage.tsdb.path "$PROMETHEUS_DIR/data" --storage.tsdb.retention.time 2d \
    --web.listen-address "127.0.0.1:$PROMETHEUS_PORT" --log.level warn
  wait_for "prometheus readiness" 60 prometheus_ready
}

main() {
  require_root
  all_components_running || die "the local cluster is not running (make cluster-up)"
  lock monitoring 9
  local parts=("$@") part
  ((${#parts[@]})) || parts=(prometheus metrics-server)
  for part in "${parts[@]}"; do
    case $part in
      prometheus) up_prometheus ;;
      metrics-server) up_metrics_server ;;
      *) die "unknown part '$part' (expected prometheus or metrics-server)" ;;
    esac
  done
}

up_prometheus() {
  bash "$HACK/build-binaries.sh" prometheus
  mkdir -p "$PROMETHEUS_DIR"
  kubectl_m apply -f "$HACK/addons/prometheus.yaml" >/dev/null
  prometheus_kubeconfig
  write_config
  start_prometheus
  log "Prometheus ready: http://127.0.0.1:$PROMETHEUS_PORT (alerts: /api/v1/alerts)"
}

up_metrics_server() {
  # A cluster started before cluster-up passed FRONT_PROXY_FLAGS has no aggregation layer: the Metrics
  # API cannot work until the API server restarts with them (and an unavailable APIService would stall
  # namespace deletion, so none is registered).
  aggregation_enabled || die "the API server runs without the aggregation layer that metrics-server needs: \
restart the cluster to pick up its flags (make cluster-down cluster-up)"
  bash "$HACK/build-binaries.sh" metrics_server
  mkdir -p "$MARINA_CACHE/images"
  start_metrics_server
  log "metrics-server ready: kubectl top pods -A"
}

main "$@"
