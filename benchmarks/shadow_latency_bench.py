"""The client's latency on a running cluster while the serving pods mirror every request to a shadow
challenger, against the same model served without mirroring, in the same run.

Two ModelDeployments serve the same model (the diabetes sample's TrainingJob, alpha 0.1) on two replicas
each: `plain` (no shadow ever) and `shadowed` (Canary with `spec.rollout.shadow` at 100 %). One client
thread sends single-row v2 requests, each on a new connection to the Service's ClusterIP (as a client
through the Service does: kube-proxy spreads them over the pods), alternating between the two Services
in blocks of --block requests, so both see the same machine and its drift cancels; with --pause-ms, the
client pauses that long after each answer (a client's think time: back to back, each request shares the
cores with the challenger answering the copy of the one before). Two phases:

1. before: neither mirrors. The ratio of the p99s is the noise of the measurement itself (A/A).
2. shadowing: `shadowed` is pointed at a challenger trained with another alpha (it agrees), with a shadow
   phase far longer than the measurement, so its stable pods copy every answered request to the
   challenger's pods throughout; measured once those pods are ready and mirroring.

Reported per phase and Service: p50, p99 and its 95 % interval (distribution-free, from the order
statistics around rank n*0.99: the ranks n*p -/+ 1.96*sqrt(n*p*(1-p))), and the ratio of the p99s with
the interval the two p99s' intervals give it. The issue's target: p99 with shadowing within 10 % of
without. Then the copies the mirroring pods made (status.rollout.shadow). Everything is deleted after,
unless --keep.

    KUBECONFIG=.cluster/kubeconfig python benchmarks/shadow_latency_bench.py [--requests 5000] [--block 50]
        [--pause-ms 0]
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import time
import uuid
from typing import Any

from cluster_bench import REPO, kubectl, wait_ready

sys.path[:0] = [str(REPO)]  # tests.e2e.traffic: the client the shadow e2e test measures with

PLAIN, SHADOWED = "plain", "shadowed"
STABLE, CHALLENGER = "stable", "better"
#: The shadow phase outlasts any measurement: the verdict waits for durationSeconds.
SHADOW = {"percent": 100, "minRequests": 100, "durationSeconds": 3600, "maxDifference": 0.5}
ROW = [0.01 * i for i in range(10)]
SERVER_PORT = 8080  # the serving container's port (pod IPs are reachable from the local cluster's host)


def report(phase: str, times: dict[str, list[float]]) -> None:
    """Print each Service's p50 and p99 (ms) and the p99s' ratio with its interval."""
    from tests.e2e.traffic import quantile

    p99 = {name: quantile(values, 0.99) for name, values in times.items()}
    for name, values in times.items():
        q = p99[name]
        print(
            f"  {phase:10s} {name:9s} p50 {quantile(values, 0.5).value * 1e3:7.3f} ms   p99 "
            f"{q.value * 1e3:7.3f} ms (95 % {q.low * 1e3:.3f}-{q.high * 1e3:.3f})   ({len(values)} requests)"
        )
    on, off = p99[SHADOWED], p99[PLAIN]
    interval = f"95 % {on.low / off.high:.3f}-{on.high / off.low:.3f}"
    print(f"  {phase:10s} p99 {SHADOWED}/{PLAIN} {on.value / off.value:.3f} ({interval})")


def apply(namespace: str, *documents: dict[str, Any]) -> None:
    kubectl(
        "-n",
        namespace,
        "apply",
        "-f",
        "-",
        stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": documents}),
    )


def resource(kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "marina.dev/v1alpha1", "kind": kind, "metadata": {"name": name}, "spec": spec}


def status(namespace: str, kind: str, name: str) -> dict[str, Any]:
    return dict(json.loads(kubectl("-n", namespace, "get", kind, name, "-o", "json")).get("status") or {})


def wait(what: str, check: Any, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := check()):
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(1)
    return value


def mirroring(namespace: str) -> bool:
    """Whether the shadow phase counts: the stable pods all mirror and are ready (its duration runs from
    status.rollout.stepStartedAt; status.rollout.shadow is written when it is judged)."""
    rollout = status(namespace, "modeldeployment", SHADOWED).get("rollout") or {}
    if rollout.get("phase") != "Shadowing" or not rollout.get("stepStartedAt"):
        return False
    deployment = json.loads(kubectl("-n", namespace, "get", "deployment", SHADOWED, "-o", "json"))
    counts = deployment.get("status") or {}
    wanted = deployment["spec"]["replicas"]
    return bool(
        counts.get("replicas") == counts.get("updatedReplicas") == counts.get("readyReplicas") == wanted
    )


def copies(namespace: str) -> dict[str, int]:
    """What the mirroring pods did with their copies, summed (each pod's GET /v2/models/<name>/shadow)."""
    selector = f"marina.dev/modeldeployment={SHADOWED}"
    ips = kubectl("-n", namespace, "get", "pods", "-l", selector, "-o", "jsonpath={.items[*].status.podIP}")
    keys = ("mirrored", "compared", "dropped", "failed", "rejected")
    total = dict.fromkeys(keys, 0)
    for ip in ips.split():
        connection = http.client.HTTPConnection(ip, SERVER_PORT, timeout=10)
        connection.request("GET", f"/v2/models/{SHADOWED}/shadow")
        document = json.loads(connection.getresponse().read())
        connection.close()
        for key in keys:
            total[key] += document[key]
    return total


def run(namespace: str, requests: int, block: int, pause: float) -> None:
    training = {"dataset": {"name": "diabetes"}, "model": {"penalty": "l2", "alpha": 0.1}}
    apply(
        namespace,
        resource("Dataset", "diabetes", {"source": {"builtin": "diabetes"}, "target": "target"}),
        resource("TrainingJob", STABLE, training),
        resource("TrainingJob", CHALLENGER, {**training, "model": {"penalty": "l2", "alpha": 0.2}}),
    )
    for name in (STABLE, CHALLENGER):
        wait_ready(namespace, "trainingjob", name, 600)
    rollout = {"progressDeadlineSeconds": 120, "strategy": "Canary", "shadow": SHADOW}
    serving = {"model": {"trainingJob": STABLE}, "replicas": 2}
    apply(
        namespace,
        resource("ModelDeployment", PLAIN, serving),
        resource("ModelDeployment", SHADOWED, {**serving, "rollout": rollout}),
    )
    from tests.e2e.traffic import alternate

    services = {}
    for name in (PLAIN, SHADOWED):
        wait_ready(namespace, "modeldeployment", name, 300)
        ip = kubectl("-n", namespace, "get", "service", name, "-o", "jsonpath={.spec.clusterIP}")
        services[name] = (f"http://{ip}:80", name)
    for name, (url, _) in services.items():  # the Services' rules reach this host's proxy after Ready
        wait(f"{name} to answer", lambda url=url, name=name: _answers(url, name), 60)
    alternate(services, ROW, 200, block, pause)  # warm up
    print(
        f"{requests} single-row v2 requests to each Service per phase, alternating blocks of {block}, "
        f"{pause * 1e3:g} ms between an answer and the next request:"
    )
    report("before", alternate(services, ROW, requests, block, pause))
    patch = json.dumps({"spec": {"model": {"trainingJob": CHALLENGER}}})
    kubectl("-n", namespace, "patch", "modeldeployment", SHADOWED, "--type=merge", "-p", patch)
    wait("the stable pods to mirror", lambda: mirroring(namespace), 300)
    for name, (url, _) in services.items():
        wait(f"{name} to answer", lambda url=url, name=name: _answers(url, name), 60)
    alternate(services, ROW, 200, block, pause)
    report("shadowing", alternate(services, ROW, requests, block, pause))
    print("  the mirroring pods' copies: " + ", ".join(f"{k} {v}" for k, v in copies(namespace).items()))


def _answers(url: str, name: str) -> bool:
    from tests.e2e.traffic import timed

    try:
        timed(url, name, ROW)
    except (OSError, http.client.HTTPException):
        return False
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=5000, help="requests per Service per phase")
    parser.add_argument("--block", type=int, default=50, help="requests per block before switching")
    parser.add_argument(
        "--pause-ms", type=float, default=0.0, help="the client's pause after each answer (think time)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the namespace")
    args = parser.parse_args()
    namespace = f"marina-bench-shadow-{uuid.uuid4().hex[:6]}"
    kubectl("create", "namespace", namespace)
    try:
        run(namespace, args.requests, args.block, args.pause_ms / 1e3)
    finally:
        if not args.keep:
            kubectl("delete", "namespace", namespace, "--wait=false")
    return 0


if __name__ == "__main__":
    sys.exit(main())
