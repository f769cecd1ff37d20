# Shared settings and helpers for the local-cluster scripts (sourced, never run).
# shellcheck shell=bash
MARINA_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# shellcheck source=hack/lib/versions.sh
source "$MARINA_ROOT/hack/lib/versions.sh"

MARINA_CACHE="${MARINA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/marina}"
export PATH="$PATH:/usr/local/go/bin:/usr/sbin:/sbin"

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

require_go() {
  command -v go >/dev/null || die "Go is not installed (need Go >= 1.24 on PATH to build the cluster binaries)"
}

# lock NAME FD: waits for other runs holding lock NAME, then holds it until this script exits.
# A script run by one that already holds NAME skips it. Daemons must be started with the FDs 7-9 closed.
lock() {
  local name=$1 fd=$2 held="MARINA_LOCK_${1//-/_}"
  [[ -n ${!held:-} ]] && return 0
  mkdir -p "$MARINA_CACHE"
  eval "exec $fd>\"\$MARINA_CACHE/$name.lock\""
  if ! flock -n "$fd"; then
    log "waiting for another run holding the $name lock"
    flock "$fd"
  fi
  export "$held=1"
}
