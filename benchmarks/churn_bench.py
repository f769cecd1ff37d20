"""The operator under churn on a running cluster (issue 20's bar): ROUNDS rounds each create a batch of
objects, wait for their conditions and delete them, then LIVE objects are alive at once (batches of the same
size), then deleted. The steps are tests/e2e/test_e2e_churn.py's (objects that start no Job: Stalled
Datasets, TrainingJobs and ModelDeployments waiting for what does not exist); after each round no series of
the leader names a deleted object, and the leader's resident memory (VmRSS of its process) is read.

Printed: each round's times and the leader's memory after it; the memory after the last round against
after the first (bar: within 10 %); the memory with LIVE objects alive (bar: at most 150 MiB). A
benchmark, not a test: the whole bar takes about seven minutes on two cores.

    KUBECONFIG=.cluster/kubeconfig python benchmarks/churn_bench.py [--rounds 5] [--batch 200] [--live 1000]
"""

from __future__ import annotations

import argparse
import os
import sys
import uuid
from pathlib import Path

from cluster_bench import REPO, kubectl

sys.path[:0] = [str(REPO), str(REPO / "tests")]

from tests.conftest import _use  # noqa: E402  (after the path: the tests' cluster helpers)
from tests.e2e.conftest import Marina  # noqa: E402
from tests.e2e.test_e2e_churn import churn, leader_pod, resident_mib  # noqa: E402

GROWTH_BAR, LIVE_BAR_MIB = 0.10, 150.0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--live", type=int, default=1_000)
    args = parser.parse_args()
    cluster = _use(Path(os.environ.get("KUBECONFIG") or REPO / ".cluster" / "kubeconfig"))
    namespace = f"churn-bench-{uuid.uuid4().hex[:6]}"
    kubectl("create", "namespace", namespace)
    try:
        marina = Marina(cluster, namespace)
        pod = leader_pod(cluster)
        memory = [resident_mib(cluster, pod)]
        print(f"leader {pod['metadata']['name']}: {memory[0]:.1f} MiB before")
        for round_ in range(args.rounds):
            reconciled, gone, _ = churn(marina, pod, [f"r{round_}"], args.batch)
            memory.append(resident_mib(cluster, pod))
            print(
                f"round {round_ + 1}: {args.batch} reconciled in {reconciled:.0f} s, gone {gone:.0f} s; "
                f"{memory[-1]:.1f} MiB after"
            )
        labels = [f"live{i}" for i in range(max(1, args.live // args.batch))]
        reconciled, gone, peak = churn(marina, pod, labels, args.batch)
        print(
            f"{args.live} alive at once: reconciled in {reconciled:.0f} s, gone {gone:.0f} s later; "
            f"{peak:.1f} MiB with them alive, {resident_mib(cluster, pod):.1f} MiB after"
        )
        growth = memory[-1] / memory[1] - 1
        print(
            f"after the last round / after the first: {memory[-1] / memory[1]:.3f} (bar <= {1 + GROWTH_BAR})"
        )
        print(f"alive at once: {peak:.1f} MiB (bar <= {LIVE_BAR_MIB:g} MiB)")
        same = leader_pod(cluster)["metadata"]["name"] == pod["metadata"]["name"]
        return 0 if same and growth <= GROWTH_BAR and peak <= LIVE_BAR_MIB else 1
    finally:
        kubectl("delete", "namespace", namespace, "--wait=false")


if __name__ == "__main__":
    sys.exit(main())
