#!/usr/bin/env bash
# `make test` (and so CI's .ci/run): every test, in phases that overlap where they can.
#
#   setup    in the background, for the local cluster: the cluster's Go builds, then hack/cluster-up.sh; beside
#            them hack/images.sh --no-load (debootstrap and docker build: mostly downloads and disk), and after
#            them Prometheus' and metrics-server's builds; the images go into the cluster's containerd as soon as
#            it runs, then MinIO and the operator are deployed (tests/e2e/operator: the operator with shorter
#            waits) and metrics-server and Prometheus started. Each step done is marked in $MARINA_TEST_RUN,
#            where the session fixtures look first (tests/run_once.py), so no pytest worker does it again; a
#            failed one is reported there too, and its fixture fails at once with the same message.
#   unit     meanwhile, in the foreground: the tests that need no cluster on 2 workers, then tests/solver again
#            with 1 and 2 BLAS threads (its tolerances hold for any summation order).
#   cluster  the cluster tests side by side on $MARINA_TEST_WORKERS workers (default 4), each module in its own
#            namespace; --dist loadfile keeps a module's tests, which share that namespace and its fixtures, on
#            one worker. The longest modules start first (tests/conftest.py, MODULE_ORDER).
#   serial   the tests marked serial (they disturb the whole cluster: operator or MinIO restarts, leader kills,
#            the NetworkPolicy enforcer, or take the machine's CPU), alone, one after the other.
# Every phase runs even when an earlier one failed, so one run reports every failure; the exit status is
# non-zero when any did. Each pytest run prints its slowest tests; the end prints each phase's time and the
# slowest tests of the whole run.
#
# With a KUBECONFIG that reaches another cluster (kind, a remote one) nothing is set up here: the fixtures
# check and deploy what they need, as under plain pytest. PYTEST_ARGS go to every pytest run (-x, -k ...;
# not -m, which the phases set). MARINA_TEST_WORKERS sets the cluster phase's workers.
set -uo pipefail
HACK="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HACK/.." && pwd)"
cd "$ROOT"
PYTHON=${PYTHON:-python3}
WORKERS=${MARINA_TEST_WORKERS:-4}
read -r -a PYTEST_ARGS <<<"${PYTEST_ARGS:-}"
RUN=$(mktemp -d "${TMPDIR:-/tmp}/marina-test-run.XXXXXX")
export MARINA_TEST_RUN=$RUN  # shared by every pytest run below (tests/run_once.py)
LOGS=$ROOT/.cluster
REPORTS=$LOGS/test-reports  # each phase's JUnit XML (git-ignored, like the logs)
rm -rf "$REPORTS" && mkdir -p "$REPORTS"
STARTED=$SECONDS
status=0
phases=()

say() { printf '[test %s] %s\n' "$(date +%H:%M:%S)" "$*"; }

# step NAME LOG COMMAND...: runs one set-up step with its output in .cluster/LOG; notes its time in the run
# folder; on failure keeps the reason as NAME.failed, which the fixture of that name reports (tests/run_once.py).
step() {
  local name=$1 log=$LOGS/$2 started=$SECONDS code=0
  shift 2
  "$@" >"$log" 2>&1 || code=$?
  if ((code == 0)); then
    echo "$name $((SECONDS - started))" >>"$RUN/setup.times"
    return 0
  fi
  { printf '%s failed (exit %s); full log %s:\n' "$*" "$code" "$log"; tail -n 40 "$log"; } >"$RUN/$name.failed"
  echo "$name failed after $((SECONDS - started))s" >>"$RUN/setup.times"
  return 1
}

done_as() { local name; for name in "$@"; do : >"$RUN/$name.done"; done; }

# The cluster the tests will use: another one that $KUBECONFIG reaches, or the local one.
local_cluster=1
if [[ -n ${KUBECONFIG:-} && $KUBECONFIG != "$ROOT/.cluster/kubeconfig" ]] \
  && bash "$HACK/kubectl.sh" version --request-timeout=5s >/dev/null 2>&1; then
  local_cluster=0
  say "using the cluster of KUBECONFIG=$KUBECONFIG; the fixtures set up what it lacks"
fi

setup_jobs=()
if ((local_cluster)); then
  source "$HACK/lib/cluster.sh"  # MARINA_CACHE, CONTAINERD_SOCK, the pinned versions
  builds_done=$RUN/cluster-builds.done
  (
    # The cluster's own Go builds first (hack/build-binaries.sh runs one build at a time), then the cluster.
    step cluster-builds build-binaries.log bash "$HACK/build-binaries.sh" pause kube etcd coredns network_policies \
      || { cp "$RUN/cluster-builds.failed" "$RUN/cluster.failed"; exit 1; }
    : >"$builds_done"
    rm -f "$LOGS/cluster-up.log"  # an earlier run's would say "started containerd" already
    step cluster cluster-up.log bash "$HACK/cluster-up.sh" &
    cluster_up=$!
    # The images go into the cluster's containerd as soon as it runs (cluster-up starts it first, then the
    # control plane): importing marina.local/marina:dev takes about 30 s, as long as the rest of cluster-up.
    until grep -q "started containerd" "$LOGS/cluster-up.log" 2>/dev/null \
      && ctr --address "$CONTAINERD_SOCK" version >/dev/null 2>&1; do
      kill -0 "$cluster_up" 2>/dev/null || break  # done (it was up already) or failed
      sleep 1
    done
    step images images.log bash "$HACK/images.sh" && done_as images
    images=$?
    wait "$cluster_up" || exit 1
    ((images == 0)) || exit 1
    # Then the operator, and beside it metrics-server and Prometheus once their binaries are built: both before
    # the cluster tests, since registering metrics-server's API while tests run could stall their namespaces'
    # deletion.
    step operator deploy.log env MARINA_OPERATOR_MANIFESTS="$ROOT/tests/e2e/operator" bash "$HACK/deploy.sh" default \
      && done_as minio operator &
    until [[ -e $RUN/monitoring-builds.done || -e $RUN/monitoring-builds.failed ]]; do sleep 1; done
    if [[ -e $RUN/monitoring-builds.done ]]; then
      step metrics-server monitoring-up-metrics-server.log bash "$HACK/monitoring-up.sh" metrics-server \
        && done_as metrics-server
      step prometheus monitoring-up-prometheus.log bash "$HACK/monitoring-up.sh" prometheus && done_as prometheus
    fi
    wait
  ) &
  setup_jobs+=($!)
  # Beside the cluster's Go builds: the images (its MinIO binary waits for the build lock).
  step images-build images-build.log bash "$HACK/images.sh" --no-load &
  setup_jobs+=($!)
  # Prometheus and metrics-server after the cluster's builds, so that they never hold the build lock the cluster
  # waits for; they build while the cluster starts and the images and the operator go in.
  (
    until [[ -e $builds_done ]]; do
      kill -0 "${setup_jobs[0]}" 2>/dev/null || exit 1  # the cluster's builds failed
      sleep 2
    done
    step monitoring-builds build-monitoring.log bash "$HACK/build-binaries.sh" prometheus metrics_server \
      && done_as monitoring-builds
  ) &
  setup_jobs+=($!)
fi
# kind's node image, binary and image archives for the nodes phase, after the images (they share the
# image-build engine) and the cluster's builds (the node image holds the same Kubernetes); waited for only
# before that phase.
kind_job=()
if ((local_cluster)); then
  (
    until [[ -e $RUN/images.done || -e $RUN/images.failed ]]; do
      kill -0 "${setup_jobs[0]}" 2>/dev/null || break
      sleep 2
    done
    step kind-prepare kind-prepare.log bash "$HACK/kind-up.sh" --prepare
  ) &
  kind_job=($!)
fi
trap 'kill "${setup_jobs[@]}" "${kind_job[@]}" 2>/dev/null' INT TERM

# pytest_phase NAME ARGS...: one pytest run; notes its time and, on failure, the status.
pytest_phase() {
  local name=$1 started=$SECONDS code
  shift
  say "phase $name: pytest $*"
  "$PYTHON" -m pytest "$@" "${PYTEST_ARGS[@]}" --junitxml="$REPORTS/$name.xml"
  code=$?
  ((code == 5)) && code=0  # nothing selected (PYTEST_ARGS -k ...)
  phases+=("$name $((SECONDS - started))s$( ((code)) && echo " (failed, exit $code)")")
  ((code == 0)) || status=1
}

pytest_phase unit -m "not cluster" -n 2 --durations=10
for threads in 1 2; do
  started=$SECONDS
  OPENBLAS_NUM_THREADS=$threads "$PYTHON" -m pytest tests/solver -q "${PYTEST_ARGS[@]}" || status=1
  phases+=("solver (OPENBLAS_NUM_THREADS=$threads) $((SECONDS - started))s")
done

if ((${#setup_jobs[@]})); then
  say "waiting for the cluster set-up"
  started=$SECONDS
  wait "${setup_jobs[@]}"
  phases+=("waited for the set-up $((SECONDS - started))s")
  say "set-up steps (seconds): $(tr '\n' ',' <"$RUN/setup.times" | sed 's/,$//; s/,/, /g')"
  for failed in "$RUN"/*.failed; do
    [[ -e $failed ]] && { say "set-up step $(basename "$failed" .failed):"; cat "$failed"; }
  done
fi

pytest_phase cluster -m "cluster and not serial and not nodes" -n "$WORKERS" --dist loadfile --no-loadscope-reorder \
  --durations=15
pytest_phase serial -m "serial and not nodes" -p no:xdist --durations=15

# nodes: the tests that drain and kill nodes, on a cluster with three workers: for the local cluster's runs a
# kind cluster made now (the local cluster is stopped first, its state kept: the two would share two cores),
# else $KUBECONFIG's cluster. Their fixtures set up that cluster themselves (a run folder of their own).
if ((local_cluster)); then
  started=$SECONDS
  wait "${kind_job[@]}"
  say "phase nodes: stopping the local cluster, making a kind cluster with three workers"
  bash "$HACK/cluster-down.sh" >"$LOGS/cluster-down.log" 2>&1 || say "cluster-down failed: see $LOGS/cluster-down.log"
  nodes_run=$(mktemp -d "${TMPDIR:-/tmp}/marina-test-run.XXXXXX")
  if [[ -e $RUN/kind-prepare.failed ]]; then
    cat "$RUN/kind-prepare.failed"
    phases+=("nodes (kind not prepared)") && status=1
  elif step kind kind-up.log env MARINA_KIND_WORKERS=3 MARINA_KIND_DEPLOY=0 bash "$HACK/kind-up.sh"; then
    phases+=("kind with three workers $((SECONDS - started))s")
    export MARINA_TEST_RUN=$nodes_run KUBECONFIG=$ROOT/.cluster/kind-kubeconfig
    pytest_phase nodes -m nodes -p no:xdist --durations=15
    export MARINA_TEST_RUN=$RUN
    # The kind cluster was made for this phase: it goes once its tests passed (on two cores its four nodes
    # would take CPU from whatever runs next), and stays for a look when they failed.
    if [[ ${phases[-1]} == *failed* ]]; then
      say "kind stays up for a look: KUBECONFIG=$ROOT/.cluster/kind-kubeconfig; 'make kind-down' removes it"
    else
      bash "$HACK/kind/kind-down.sh" >"$LOGS/kind-down.log" 2>&1 || say "kind-down failed: see $LOGS/kind-down.log"
    fi
  else
    cat "$RUN/kind.failed" 2>/dev/null || tail -n 40 "$LOGS/kind-up.log"
    phases+=("nodes (kind failed)") && status=1
  fi
  rm -rf "$nodes_run"
else
  pytest_phase nodes -m nodes -p no:xdist --durations=15
fi

say "phases: $(printf '%s; ' "${phases[@]}")total $((SECONDS - STARTED))s"
"$PYTHON" "$HACK/lib/slowest.py" 15 "$REPORTS"/*.xml
rm -rf "$RUN"
exit "$status"
