# Monitoring's layout on the local cluster (sourced after hack/lib/cluster.sh, never run).
# shellcheck shell=bash
PROMETHEUS_DIR=$STATE_DIR/prometheus      # configuration, its kubeconfig, rules and TSDB: go with the cluster
PROMETHEUS_PORT=9090
PROMETHEUS_BIN=$MARINA_CACHE/prometheus-$PROMETHEUS_VERSION
METRICS_SERVER_BIN=$MARINA_CACHE/metrics-server-$METRICS_SERVER_VERSION

prometheus_ready() { curl -fsS "http://127.0.0.1:$PROMETHEUS_PORT/-/ready" >/dev/null 2>&1; }

all_components_running() {
  local c
  for c in "${COMPONENTS[@]}"; do pid_of "$c" >/dev/null || return 1; done
}

# stop_prometheus: SIGTERM to the Prometheus of the PID file (only while that PID still runs prometheus),
# SIGKILL after 10 s; the PID file goes either way.
stop_prometheus() {
  local pid i
  if pid=$(pid_of prometheus); then
    log "stopping prometheus (pid $pid)"
    kill "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$RUN_DIR/prometheus.pid"
}
