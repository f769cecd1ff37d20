#!/usr/bin/env bash
# Builds (or reuses) the pinned cluster binaries from the Go module proxy into a cache outside the repo:
#   ~/.cache/marina/bin-<kube>/   kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl
#   ~/.cache/marina/etcd-<v>/     etcd etcdctl
#   ~/.cache/marina/kube-network-policies-<v>/  kube-network-policies (NetworkPolicy enforcer; hack/lib/network-policies.sh)
#   ~/.cache/marina/coredns-<v>/  coredns
#   ~/.cache/marina/minio-<v>/    minio
# and, for kind (hack/kind/node-image.sh; not part of the default set):
#   ~/.cache/marina/kubeadm-<kube>/               kubeadm (same release and version stamp as bin-<kube>)
#   ~/.cache/marina/kind-<v>/                     kind
#   ~/.cache/marina/crictl-<v>/                   crictl
#   ~/.cache/marina/local-path-provisioner-<v>/   local-path-provisioner
# and, for monitoring (hack/monitoring-up.sh, the promtool tests; not part of the default set either):
#   ~/.cache/marina/prometheus-<v>/      prometheus promtool (Kubernetes service discovery only)
#   ~/.cache/marina/metrics-server-<v>/  metrics-server
# and, for GitOps (the Argo CD, kstatus and Helm tests; not part of the default set):
#   ~/.cache/marina/argocd-health-<gopher-lua v>/  argocd-health (hack/tools/argocd-health: Argo CD's Lua health checks)
#   ~/.cache/marina/kstatus-<cli-utils v>/         kstatus (hack/tools/kstatus: cli-utils' status.Compute)
#   ~/.cache/marina/helm-<v>/                      helm
#   ~/.cache/marina/kustomize-<v>/                 kustomize (only where no kubectl is at hand: the chart test)
# Usage: hack/build-binaries.sh [kube|etcd|coredns|minio|pause|kubeadm|kind|crictl|local_path_provisioner|prometheus|metrics_server
#                               |argocd_health|kstatus|helm|kustomize ...]
#        (default: pause kube etcd coredns minio; cluster-up also builds network_policies)
# Each build goes to <folder>.partial and is renamed when complete, so a killed build is simply redone.
set -euo pipefail
HACK="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=hack/lib/common.sh
source "$HACK/lib/common.sh"

export CGO_ENABLED=0 GOFLAGS="-trimpath -buildvcs=false" GOTOOLCHAIN=local
STAGING_MODULES=(
  api apiextensions-apiserver apimachinery apiserver cli-runtime client-go cloud-provider cluster-bootstrap
  code-generator component-base component-helpers controller-manager cri-api cri-client csi-translation-lib
  dynamic-resource-allocation endpointslice externaljwt kms kube-aggregator kube-controller-manager kube-proxy
  kube-scheduler kubectl kubelet metrics mount-utils pod-security-admission sample-apiserver sample-cli-plugin
  sample-controller
)
KUBE_COMMANDS=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl)

# wrapper_module DIR MODULE_PATH GO_MOD_BODY: a throw-away main module that requires what we build.
wrapper_module() {
  local dir=$1 body=$2
  mkdir -p "$dir"
  printf 'module marina.local/build\n\ngo 1.24.0\n\n%s\n' "$body" >"$dir/go.mod"
  : >"$dir/go.sum"
}

# finish OUT: publishes OUT.partial as OUT.
finish() {
  touch "$1.partial/.complete"
  rm -rf "$1"
  mv "$1.partial" "$1"
}

# build_kubernetes OUT SRC COMMAND...: commands of k8s.io/kubernetes at $KUBE_VERSION, built in a wrapper module
# (SRC) with a replace line per staging module, into OUT.
build_kubernetes() {
  local out=$1 src=$2
  shift 2
  [[ -f $out/.complete ]] && return 0
  local staging_version="v0${KUBE_VERSION#v1}"
  local minor="${KUBE_VERSION#v1.}"; minor="${minor%%.*}"
  local replaces="" m
  for m in "${STAGING_MODULES[@]}"; do replaces+="	k8s.io/$m => k8s.io/$m $staging_version"$'\n'; done
  wrapper_module "$src" "godebug default=go1.24

require k8s.io/kubernetes $KUBE_VERSION

replace (
$replaces)"
  local pkgs=() c
  for c in "$@"; do pkgs+=("k8s.io/kubernetes/cmd/$c"); done
  log "building Kubernetes $KUBE_VERSION ($*) into $out"
  (cd "$src" && go get "${pkgs[@]/%/@$KUBE_VERSION}" >/dev/null)
  # Same stamp the Kubernetes release uses, so `kubectl version` and /version show the real release.
  local ld="-s -w" p date
  date=$(cd "$src" && go list -m -json k8s.io/kubernetes | sed -n 's/.*"Time": "\(.*\)".*/\1/p')
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X $p.gitVersion=$KUBE_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
    ld+=" -X $p.gitCommit=go-module-proxy -X $p.buildDate=${date:-unknown}"
  done
  rm -rf "$out.partial" && mkdir -p "$out.partial"
  (cd "$src" && go build -ldflags "$ld" -o "$out.partial/" "${pkgs[@]}")
  finish "$out"
}

build_kube() {
  build_kubernetes "$MARINA_CACHE/bin-$KUBE_VERSION" "$MARINA_CACHE/src/kubernetes-$KUBE_VERSION" "${KUBE_COMMANDS[@]}"
}

build_etcd() {
  local out="$MARINA_CACHE/etcd-$ETCD_VERSION" src="$MARINA_CACHE/src/etcd-$ETCD_VERSION"
  [[ -f $out/.complete ]] && return 0
  log "building etcd $ETCD_VERSION into $out"
  wrapper_module "$src" ""
  (cd "$src" && go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" "go.etcd.io/etcd/etcdctl/v3@$ETCD_VERSION" >/dev/null)
  rm -rf "$out.partial" && mkdir -p "$out.partial"
  (cd "$src" && go build -ldflags "-s -w" -o "$out.partial/etcd" go.etcd.io/etcd/server/v3 \
    && go build -ldflags "-s -w" -o "$out.partial/etcdctl" go.etcd.io/etcd/etcdctl/v3)
  finish "$out"
}

# build_in_module OUT MODULE VERSION BINARY GO_BUILD_FLAGS...: builds the main package at a module's root inside
# a copy of that module, so its own go.mod (with its replace directives) decides the dependencies.
build_in_module() {
  local out=$1 module=$2 version=$3 binary=$4; shift 4
  [[ -f $out/.complete ]] && return 0
  log "building $module $version into $out"
  local src dir
  src=$MARINA_CACHE/src/$(basename "$out")
  dir=$(cd /tmp && go mod download -json "$module@$version" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
  rm -rf "$src" && mkdir -p "$(dirname "$src")" && cp -r "$dir" "$src" && chmod -R u+w "$src"
  rm -rf "$out.partial" && mkdir -p "$out.partial"
  (cd "$src" && go build "$@" -o "$out.partial/$binary" .)
  finish "$out"
}

build_coredns() {
  build_in_module "$MARINA_CACHE/coredns-$COREDNS_VERSION" github.com/coredns/coredns "$COREDNS_VERSION" coredns \
    -ldflags "-s -w -X github.com/coredns/coredns/coremain.GitCommit=$COREDNS_VERSION"
}

build_minio() {
  local v=$MINIO_VERSION
  build_in_module "$MARINA_CACHE/minio-$v" github.com/minio/minio "$v" minio \
    -tags kqueue -ldflags "-s -w -X github.com/minio/minio/cmd.Version=$v -X github.com/minio/minio/cmd.ReleaseTag=$v"
}

build_pause() {
  local out="$MARINA_CACHE/pause" src="$HACK/../images/pause"
  [[ -x $out/pause && $out/pause -nt $src/pause.go ]] && return 0
  mkdir -p "$out"
  (cd "$src" && go build -ldflags "-s -w" -o "$out/pause" .)
}

# build_network_policies: sigs.k8s.io/kube-network-policies, the NetworkPolicy enforcer cluster-up runs beside the
# bridge plugin (its main package is ./cmd, so build_in_module's module-root build does not fit).
build_network_policies() {
  local v=$KUBE_NETWORK_POLICIES_VERSION out="$MARINA_CACHE/kube-network-policies-$KUBE_NETWORK_POLICIES_VERSION" dir
  local src="$MARINA_CACHE/src/kube-network-policies-$v"
  [[ -f $out/.complete ]] && return 0
  log "building kube-network-policies $v into $out"
  dir=$(cd /tmp && go mod download -json "sigs.k8s.io/kube-network-policies@$v" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
  rm -rf "$src" && mkdir -p "$(dirname "$src")" && cp -r "$dir" "$src" && chmod -R u+w "$src"
  rm -rf "$out.partial" && mkdir -p "$out.partial"
  (cd "$src" && go build -ldflags "-s -w" -o "$out.partial/kube-network-policies" ./cmd)
  finish "$out"
}

# build_kubeadm: kubeadm in its own cache folder (bin-<kube> keeps its meaning) and wrapper module; Go's build
# cache is shared with build_kube.
build_kubeadm() {
  build_kubernetes "$MARINA_CACHE/kubeadm-$KUBE_VERSION" "$MARINA_CACHE/src/kubeadm-$KUBE_VERSION" kubeadm
}

# build_kind: the kind CLI, built inside its own module so its go.mod decides the dependencies.
build_kind() {
  build_in_module "$MARINA_CACHE/kind-$KIND_VERSION" sigs.k8s.io/kind "$KIND_VERSION" kind -ldflags "-s -w"
}

# build_crictl: crictl (cri-tools), which `kind load` runs inside the node.
build_crictl() {
  local out="$MARINA_CACHE/crictl-$CRICTL_VERSION" src="$MARINA_CACHE/src/crictl-$CRICTL_VERSION" dir
  [[ -f $out/.complete ]] && return 0
  log "building crictl $CRICTL_VERSION into $out"
  dir=$(cd /tmp && go mod download -json "sigs.k8s.io/cri-tools@$CRICTL_VERSION" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
  rm -rf "$src" && mkdir -p "$(dirname "$src")" && cp -r "$dir" "$src" && chmod -R u+w "$src"
  rm -rf "$out.partial" && mkdir -p "$out.partial"
  (cd "$src" && go build -ldflags "-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version=$CRICTL_VERSION" \
    -o "$out.partial/crictl" ./cmd/crictl)
  finish "$out"
}

# build_local_path_provisioner: rancher's local-path-provisioner, kind's default StorageClass provisioner (its module
# zip carries a partial vendor/ folder, hence -mod=mod).
build_local_path_provisioner() {
  local v=$LOCAL_PATH_PROVISIONER_VERSION
  build_in_module "$MARINA_CACHE/local-path-provisioner-$v" github.com/rancher/local-path-provisioner "$v" \
    local-path-provisioner -mod=mod -ldflags "-s -w -X main.VERSION=$v"
}

# build_prometheus: prometheus and promtool (hack/monitoring-up.sh, tests/manifests/test_monitoring_rules.py). Without the
# builtinassets tag the web UI is not embedded (it would need npm); the API and the rules engine are all there.
# remove_all_sd,enable_kubernetes_sd leaves out the cloud service discoveries (AWS, Azure, GCE, ... SDKs), which
# are most of a cold build; static, file and Kubernetes discovery remain.
build_prometheus() {
  local v=$PROMETHEUS_VERSION out="$MARINA_CACHE/prometheus-$PROMETHEUS_VERSION" src release
  [[ -f $out/.complete ]] && return 0
  release="3.${v#v0.3}"  # module v0.316.0 is Prometheus 3.16.0
  log "building Prometheus $release (module $v) into $out"
  module_copy github.com/prometheus/prometheus "$v" "$MARINA_CACHE/src/prometheus-$v"
  src=$MARINA_CACHE/src/prometheus-$v
  local p=github.com/prometheus/common/version
  rm -rf "$out.partial" && mkdir -p "$out.partial"
  (cd "$src" && GOWORK=off go build -tags remove_all_sd,enable_kubernetes_sd \
    -ldflags "-s -w -X $p.Version=$release -X $p.Revision=go-module-proxy -X $p.Branch=HEAD" \
    -o "$out.partial/" ./cmd/prometheus ./cmd/promtool)
  finish "$out"
}

# build_metrics_server: the Metrics API behind `kubectl top` and resource-metric HPAs (hack/monitoring-up.sh).
build_metrics_server() {
  local v=$METRICS_SERVER_VERSION out="$MARINA_CACHE/metrics-server-$METRICS_SERVER_VERSION"
  [[ -f $out/.complete ]] && return 0
  log "building metrics-server $v into $out"
  module_copy sigs.k8s.io/metrics-server "$v" "$MARINA_CACHE/src/metrics-server-$v"
  rm -rf "$out.partial" && mkdir -p "$out.partial"
  (cd "$MARINA_CACHE/src/metrics-server-$v" && go build \
    -ldflags "-s -w -X k8s.io/client-go/pkg/version.gitVersion=$v -X k8s.io/client-go/pkg/version.gitCommit=go-module-proxy" \
    -o "$out.partial/metrics-server" ./cmd/metrics-server)
  finish "$out"
}

# build_repo_tool NAME MODULE VERSION: one of Marina's own small Go programs, hack/tools/NAME, into
# $MARINA_CACHE/NAME-VERSION/NAME; its go.mod must require MODULE at VERSION (the pin in versions.sh), and go.sum
# fixes everything else. Rebuilt when its source changes (the folder keeps the source's sha256 in .source).
build_repo_tool() {
  local name=$1 module=$2 version=$3
  local tool=$HACK/tools/$name out="$MARINA_CACHE/$name-$version" src="$MARINA_CACHE/src/$name-$version" digest
  digest=$(cd "$tool" && cat go.mod go.sum ./*.go | sha256sum | cut -c1-64)
  [[ -f $out/.complete && $(cat "$out/.source" 2>/dev/null) == "$digest" ]] && return 0
  grep -Eq "^[[:space:]]*(require[[:space:]]+)?$module $version( |$)" "$tool/go.mod" \
    || die "hack/tools/$name/go.mod does not require $module $version (hack/lib/versions.sh): update one of them"
  log "building $name ($module $version) into $out"
  rm -rf "$src" && mkdir -p "$src" && cp "$tool"/go.mod "$tool"/go.sum "$tool"/*.go "$src/"
  rm -rf "$out.partial" && mkdir -p "$out.partial"
  (cd "$src" && GOWORK=off go build -mod=readonly -ldflags "-s -w" -o "$out.partial/$name" .)
  echo "$digest" >"$out.partial/.source"
  finish "$out"
}

build_argocd_health() {
  build_repo_tool argocd-health github.com/yuin/gopher-lua "$GOPHER_LUA_VERSION"
}

build_kstatus() {
  build_repo_tool kstatus sigs.k8s.io/cli-utils "$CLI_UTILS_VERSION"
}

# build_helm: the helm CLI at $HELM_VERSION, inside its own module (its go.mod decides the dependencies), stamped
# as the release's Makefile does.
build_helm() {
  local v=$HELM_VERSION out="$MARINA_CACHE/helm-$HELM_VERSION" p=helm.sh/helm/v4/internal/version
  [[ -f $out/.complete ]] && return 0
  log "building Helm $v into $out"
  module_copy helm.sh/helm/v4 "$v" "$MARINA_CACHE/src/helm-$v"
  rm -rf "$out.partial" && mkdir -p "$out.partial"
  (cd "$MARINA_CACHE/src/helm-$v" && GOWORK=off go build \
    -ldflags "-s -w -X $p.version=$v -X $p.gitCommit=go-module-proxy -X $p.gitTreeState=clean" \
    -o "$out.partial/helm" ./cmd/helm)
  finish "$out"
}

# build_kustomize: the kustomize CLI, the version kubectl embeds (for `kustomize build` where kubectl is missing).
build_kustomize() {
  build_in_module "$MARINA_CACHE/kustomize-$KUSTOMIZE_VERSION" sigs.k8s.io/kustomize/kustomize/v5 "$KUSTOMIZE_VERSION" \
    kustomize -ldflags "-s -w -X sigs.k8s.io/kustomize/api/provenance.version=kustomize/$KUSTOMIZE_VERSION"
}

# module_copy MODULE VERSION DIR: a writable copy of a module's source from the module proxy.
module_copy() {
  local dir
  dir=$(cd /tmp && go mod download -json "$1@$2" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
  rm -rf "$3" && mkdir -p "$(dirname "$3")" && cp -r "$dir" "$3" && chmod -R u+w "$3"
}

require_go
lock build 7
targets=("$@")
((${#targets[@]})) || targets=(pause kube etcd coredns minio)
for t in "${targets[@]}"; do
  start=$SECONDS
  "build_$t"
  log "$t ready ($((SECONDS - start))s)"
done
