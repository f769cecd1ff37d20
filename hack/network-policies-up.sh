#!/usr/bin/env bash
# (Re)starts only the local cluster's NetworkPolicy enforcer (kube-network-policies, hack/lib/network-policies.sh)
# on a running cluster, building it first when its pinned version is not cached: for a cluster brought up
# before the enforcer was part of cluster-up, or after it died. `hack/network-policies-up.sh --stop` stops it
# and deletes its nftables table (NetworkPolicies are then no longer enforced).
set -euo pipefail
HACK="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=hack/lib/cluster.sh
source "$HACK/lib/cluster.sh"
require_root
lock cluster 8
pid_of kube-apiserver >/dev/null || die "the local cluster is not running (make cluster-up)"
stop_network_policies
[[ ${1:-} == --stop ]] && exit 0
bash "$HACK/build-binaries.sh" network_policies
started=$SECONDS
start_network_policies
log "$NETPOL enforcing in $((SECONDS - started))s"
