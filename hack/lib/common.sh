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

# debian_mirror SUITE: prints the Debian archive to debootstrap SUITE from: $MARINA_DEBIAN_MIRROR when set, else
# the first of this machine's apt sources for SUITE (deb822 *.sources first, then the one-line sources.list and
# *.list; -security archives and URIs debootstrap cannot fetch are skipped). No host is assumed.
# MARINA_APT_ROOT (default /etc/apt) is the apt configuration folder it reads (the tests point it elsewhere).
debian_mirror() {
  local suite=$1 root=${MARINA_APT_ROOT:-/etc/apt} files=() f
  [[ -n ${MARINA_DEBIAN_MIRROR:-} ]] && { echo "$MARINA_DEBIAN_MIRROR"; return 0; }
  for f in "$root/sources.list" "$root"/sources.list.d/*.list "$root"/sources.list.d/*.sources; do
    [[ -f $f ]] && files+=("$f")
  done
  ((${#files[@]})) && awk -v suite="$suite" '
    function has(list, word,  w, i, n) {
      n = split(list, w); for (i = 1; i <= n; i++) if (w[i] == word) return 1
    }
    function usable(uri) { return uri ~ /^(https?|ftp|file):/ && uri !~ /-security\/?$/ }
    function stanza_end(  u, i, n) {   # end of a deb822 stanza: keep its first usable URI if it serves suite
      n = deb822 == "" && enabled && has(types, "deb") && has(suites, suite) ? split(uris, u) : 0
      for (i = 1; i <= n && deb822 == ""; i++) if (usable(u[i])) deb822 = u[i]
      types = suites = uris = key = ""; enabled = 1
    }
    FNR == 1 { stanza_end() }
    /^[ \t]*#/ { next }
    /^[ \t]*$/ { stanza_end(); next }
    FILENAME !~ /\.sources$/ && $1 == "deb" {   # one-line format: deb [options] URI SUITE COMPONENT...
      line = $0; gsub(/\[[^]]*\]/, " ", line); split(line, w)
      if (oneline == "" && w[3] == suite && usable(w[2])) oneline = w[2]
      next
    }
    /^[A-Za-z][A-Za-z0-9-]*:/ {   # deb822 field (continuation lines start with a blank and keep the key)
      key = tolower(substr($0, 1, index($0, ":") - 1)); $0 = substr($0, index($0, ":") + 1)
    }
    key == "types" { types = types " " $0 }
    key == "uris" { uris = uris " " $0 }
    key == "suites" { suites = suites " " $0 }
    key == "enabled" { enabled = tolower($1) != "no" }
    END {
      stanza_end()
      if (deb822 == "" && oneline == "") exit 1
      print (deb822 != "" ? deb822 : oneline)
    }' "${files[@]}" && return 0
  die "no Debian archive for $suite in $root/sources.list or $root/sources.list.d/*.{sources,list};" \
    "set MARINA_DEBIAN_MIRROR to the URI of one (the URI debootstrap takes)"
}
