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
