# A Docker engine for image builds only, with its own data-root and socket so it never touches a system Docker.
# It runs without bridge or iptables changes; builds use the host network (--network host).
# shellcheck shell=bash
DOCKER_EXEC_ROOT=/run/marina-docker
DOCKER_DATA_ROOT=/var/lib/marina-docker   # layer cache, kept between runs (remove by hand to reclaim space)
export DOCKER_HOST=unix://$DOCKER_EXEC_ROOT/docker.sock
DOCKERD_STARTED=0

dockerd_pid() {
  local pid
  pid=$(cat "$DOCKER_EXEC_ROOT/dockerd.pid" 2>/dev/null) || return 1
  [[ -n $pid ]] && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "dockerd.*$DOCKER_DATA_ROOT" && echo "$pid"
}

ensure_dockerd() {
  dockerd_pid >/dev/null && docker version >/dev/null 2>&1 && return 0
  command -v dockerd >/dev/null || die "dockerd is missing; run hack/install-deps.sh (Debian package docker.io)"
  mkdir -p "$DOCKER_EXEC_ROOT" "$DOCKER_DATA_ROOT"
  log "starting dockerd (data-root $DOCKER_DATA_ROOT, socket $DOCKER_HOST)"
  setsid dockerd --data-root "$DOCKER_DATA_ROOT" --exec-root "$DOCKER_EXEC_ROOT" \
    --pidfile "$DOCKER_EXEC_ROOT/dockerd.pid" -H "$DOCKER_HOST" --bridge none --iptables=false \
    --ip-masq=false --ip-forward=false --userland-proxy=false \
    >>"$MARINA_CACHE/dockerd.log" 2>&1 </dev/null 7>&- 8>&- 9>&- &
  DOCKERD_STARTED=1
  local i
  for ((i = 0; i < 60; i++)); do
    docker version >/dev/null 2>&1 && return 0
    sleep 1
  done
  tail -n 20 "$MARINA_CACHE/dockerd.log" >&2
  die "dockerd did not start within 60s (log: $MARINA_CACHE/dockerd.log)"
}

stop_dockerd_if_started() {
  ((DOCKERD_STARTED)) || return 0
  local pid i
  pid=$(dockerd_pid) || return 0
  kill "$pid"
  for ((i = 0; i < 100; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  # dockerd leaves its network namespace handle mounted under its exec-root.
  local target
  for target in $(findmnt -rn -o TARGET | grep "^$DOCKER_EXEC_ROOT/" | sort -r); do umount "$target" || true; done
}
