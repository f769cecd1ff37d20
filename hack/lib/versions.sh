# Pinned versions of everything the local cluster builds from source (sourced by hack/*.sh).
# Changing one of these makes hack/build-binaries.sh rebuild into a new cache folder.
KUBE_VERSION=v1.33.13        # k8s.io/kubernetes; staging modules are v0.33.13
ETCD_VERSION=v3.5.35         # go.etcd.io/etcd/server/v3 (+ etcdctl)
COREDNS_VERSION=v1.14.7       # github.com/coredns/coredns
MINIO_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c   # github.com/minio/minio (no semver tags: newest commit, 2026-02-12)
DEBIAN_SUITE=bookworm        # base image root file system (debootstrap)
KIND_VERSION=v0.30.0          # sigs.k8s.io/kind: the last release whose CI still covered cgroup v1 hosts (kind#4077)
CRICTL_VERSION=v1.34.0        # sigs.k8s.io/cri-tools (crictl, used by `kind load` inside the node)
LOCAL_PATH_PROVISIONER_VERSION=v0.0.30   # github.com/rancher/local-path-provisioner (kind's default StorageClass)
KUBE_NETWORK_POLICIES_VERSION=v0.8.0     # sigs.k8s.io/kube-network-policies: NetworkPolicy enforcement (nftables + nfqueue)
# Monitoring (hack/monitoring-up.sh, the promtool tests):
PROMETHEUS_VERSION=v0.316.0    # github.com/prometheus/prometheus (module v0.3XX.Y is Prometheus v3.XX.Y): prometheus, promtool
METRICS_SERVER_VERSION=v0.8.0  # sigs.k8s.io/metrics-server
# GitOps tools (the Argo CD, kstatus and Helm tests; not part of the cluster). The first two are Marina's own small
# programs in hack/tools/*, whose go.mod must require these versions:
GOPHER_LUA_VERSION=v1.1.2     # github.com/yuin/gopher-lua: the Lua Argo CD runs health checks in (hack/tools/argocd-health)
CLI_UTILS_VERSION=v0.37.2     # sigs.k8s.io/cli-utils: kstatus, as Flux reads status (hack/tools/kstatus)
HELM_VERSION=v4.3.2           # helm.sh/helm/v4: helm lint, template and install of manifests/helm/marina
KUSTOMIZE_VERSION=v5.6.0      # sigs.k8s.io/kustomize/kustomize/v5: the kustomize in kubectl v1.33, for the chart test without kubectl
