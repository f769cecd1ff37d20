"""Shadow traffic: the decision's error rates, and what mirroring costs the client's latency.

1. Decision. The stable pods' `Comparison` (marina.serving.shadow) and the operator's `judge`
   (marina.controller.modeldeployments.shadowing) on simulated shadow phases: minRequests single-row
   copies of a champion whose predictions are normal, and challengers whose true mean |difference| is
   0 (identical), a retrained model's (a small fraction of maxDifference), exactly maxDifference (the
   boundary: the abort rate should be at most alpha), and 1.25, 1.5 and 2 times it (detection). Each
   rate is over --trials phases, with its binomial standard error.

2. Latency. Three `marina serve` processes on loopback: a challenger, a champion mirroring every answered
   request to it (`--shadow-url`, 100 %) and the same champion without. One client sends single-row
   v1 requests over keep-alive connections, alternating between the two champions in blocks (so both
   see the same machine), and times each answer. Reported: p50, p99, p99.9 and requests per second for
   each, the ratio of the p99s (the target is within 10 %), and what the mirroring champion did with
   its copies. Then the same with the challenger stopped (every copy fails) and hanging (a port that
   never answers: the queue fills, copies are dropped).

    PYTHONPATH=operator python benchmarks/shadow_bench.py [--trials 2000] [--requests 5000] [--clients 1]
"""

from __future__ import annotations

import argparse
import math
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

import httpx
import numpy as np

from marina.controller.modeldeployments import shadowing
from marina.controller.modeldeployments.spec import Shadow
from marina.model.artifact import ModelArtifact, save
from marina.serving.shadow import Comparison

FEATURES = [f"x{i}" for i in range(10)]


# ---------------------------------------------------------------- 1. the decision


def abort_rate(mean_difference: float, rule: Shadow, trials: int, rng: np.random.Generator) -> float:
    """Share of simulated shadow phases aborted for a challenger whose true mean |difference| is
    `mean_difference` champion standard deviations."""
    n = rule.min_requests
    sigma = mean_difference / math.sqrt(2 / math.pi)  # |N(0, sigma)| has mean sigma * sqrt(2 / pi)
    aborted = 0
    for _ in range(trials):
        champion = rng.normal(150.0, 60.0, n)
        challenger = champion + rng.normal(0.0, 60.0 * sigma, n) if sigma else champion.copy()
        comparison = Comparison()
        comparison.add(champion, challenger)
        document = {**comparison.document(), "compared": n, "mirrored": n, "challenger": "c"}
        verdict = shadowing.judge(shadowing.PodComparison.parse(document), rule, 0.01, rule.duration_seconds)
        aborted += verdict.verdict == shadowing.DISAGREED
    return aborted / trials


def decision(trials: int) -> None:
    rng = np.random.default_rng(2026)
    for alpha in (0.01, 0.05):
        rule = Shadow(alpha=alpha)  # the contract's defaults: minRequests 500, maxDifference 0.1
        said = f"minRequests {rule.min_requests}, maxDifference {rule.max_difference} sd, alpha {alpha}"
        print(f"decision: {said}")
        for label, factor in (
            ("identical", 0.0),
            ("retrained (0.3x)", 0.3),
            ("boundary (1.0x)", 1.0),
            ("shifted 1.25x", 1.25),
            ("shifted 1.5x", 1.5),
            ("shifted 2x", 2.0),
        ):
            rate = abort_rate(factor * rule.max_difference, rule, trials, rng)
            error = math.sqrt(rate * (1 - rate) / trials)
            mean = factor * rule.max_difference
            print(f"  {label:18s} mean |diff| {mean:.3f} sd: aborted {rate:.4f} ± {error:.4f}")


# ---------------------------------------------------------------- 2. latency


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve(path: str, sha256: str, *flags: str, nice: int = 0) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    command = ["nice", "-n", str(nice), sys.executable, "-m", "marina.cli", "serve", "--model", path]
    command += ["--sha256", sha256, "--name", "bench", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--log-level", "warning", *flags]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{base}/v2/health/ready").status_code == 200:
                return process, base
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"the server on {base} never became ready")
        time.sleep(0.05)


def measure(bases: dict[str, str], requests: int, clients: int, block: int = 50) -> dict[str, list[float]]:
    """Seconds per answer for each base, sent in alternating blocks by `clients` threads."""
    body = {"instances": [[0.5 * i for i in range(10)]]}
    times: dict[str, list[float]] = {name: [] for name in bases}
    lock = threading.Lock()

    def client(share: int) -> None:
        connections = {name: httpx.Client(base_url=base) for name, base in bases.items()}
        mine: dict[str, list[float]] = {name: [] for name in bases}
        for start in range(0, share, block):
            for name, connection in connections.items():
                for _ in range(min(block, share - start)):
                    began = time.perf_counter()
                    answer = connection.post("/v1/models/bench:predict", json=body)
                    mine[name].append(time.perf_counter() - began)
                    assert answer.status_code == 200, answer.text
        with lock:
            for name, values in mine.items():
                times[name].extend(values)

    threads = [threading.Thread(target=client, args=(requests // clients,)) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    times["_elapsed"] = [time.perf_counter() - started]
    return times


def cpu_seconds(process: subprocess.Popen[bytes]) -> float:
    """User and system CPU seconds a process (its every thread) has used (/proc/<pid>/stat)."""
    with open(f"/proc/{process.pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def compared(
    bases: dict[str, str], processes: dict[str, subprocess.Popen[bytes]], requests: int, clients: int
) -> None:
    """`measure` and `report` the two champions, then the CPU each used per answered request: the
    difference is what a copy costs the mirroring process."""
    before = {name: cpu_seconds(process) for name, process in processes.items()}
    report(measure(bases, requests, clients), "shadow on", "off")
    used = {
        name: (cpu_seconds(process) - before[name]) / requests * 1e6 for name, process in processes.items()
    }
    print(
        f"  CPU per request: off {used['off']:.0f} us, shadow on {used['shadow on']:.0f} us "
        f"(a copy costs the mirroring process {used['shadow on'] - used['off']:.0f} us)"
    )


def report(times: dict[str, list[float]], on: str, off: str) -> None:
    p99 = {}
    for name in (off, on):
        values = np.array(times[name]) * 1000
        p99[name] = float(np.percentile(values, 99))
        print(
            f"  {name:10s} p50 {np.percentile(values, 50):.3f} ms  p99 {p99[name]:.3f} ms  "
            f"p99.9 {np.percentile(values, 99.9):.3f} ms  mean {values.mean():.3f} ms  "
            f"({len(values)} requests)"
        )
    print(f"  p99 with shadowing / without: {p99[on] / p99[off]:.3f}")


def shadow_counts(base: str) -> str:
    document = httpx.get(f"{base}/v2/models/bench/shadow").json()
    keys = ("mirrored", "compared", "rejected", "failed", "dropped", "queued")
    return ", ".join(f"{key} {document[key]}" for key in keys)


def latency(requests: int, clients: int, challenger_nice: int) -> None:
    rng = np.random.default_rng(1)
    coefficients = rng.normal(0, 1, 10).tolist()
    statistics = {
        n: {"count": 100, "mean": 0.0, "std": 1.0, "min": -50.0, "max": 50.0, "missing": 0} for n in FEATURES
    }
    champion = ModelArtifact(
        coefficients, 1.0, FEATURES, dataset={"name": "bench"}, feature_statistics=statistics
    )
    challenger = ModelArtifact(
        [c * 1.01 for c in coefficients],
        1.05,
        FEATURES,
        dataset={"name": "bench"},
        feature_statistics=statistics,
    )
    processes: list[subprocess.Popen[bytes]] = []
    hanging = socket.socket()
    try:
        with tempfile.TemporaryDirectory() as folder:
            os.makedirs(f"{folder}/a"), os.makedirs(f"{folder}/b")
            champion_file, challenger_file = save(champion, f"{folder}/a"), save(challenger, f"{folder}/b")
            # On a cluster the challenger is a pod of its own; here it shares the cores with the client
            # and the champions, so by default it runs at the lowest priority (the CPU they leave).
            target, target_base = serve(*challenger_file, nice=challenger_nice)
            processes.append(target)
            hanging.bind(("127.0.0.1", 0))
            hanging.listen(512)
            hanging_base = f"http://127.0.0.1:{hanging.getsockname()[1]}"
            off, off_base = serve(*champion_file)
            on, on_base = serve(*champion_file, "--shadow-url", target_base)
            to_hanging, hanging_champion = serve(
                *champion_file, "--shadow-url", hanging_base, "--shadow-timeout", "30"
            )
            processes += [off, on, to_hanging]
            measure({"warm-off": off_base, "warm-on": on_base}, 400, 1)
            said = f"{requests} single-row v1 requests each, {clients} client thread(s), alternating blocks"
            print(f"latency: {said}")
            print("challenger up:")
            pair = {"off": off, "shadow on": on}
            compared({"off": off_base, "shadow on": on_base}, pair, requests, clients)
            time.sleep(0.5)
            print(f"  the mirroring champion's copies: {shadow_counts(on_base)}")
            print("challenger hanging (never answers; 30 s timeout):")
            to_hanging_pair = {"off": off, "shadow on": to_hanging}
            compared({"off": off_base, "shadow on": hanging_champion}, to_hanging_pair, requests, clients)
            print(f"  the mirroring champion's copies: {shadow_counts(hanging_champion)}")
            target.terminate()
            target.wait()
            print("challenger stopped (connections refused):")
            compared({"off": off_base, "shadow on": on_base}, pair, requests, clients)
            time.sleep(0.5)
            print(f"  the mirroring champion's copies (since start): {shadow_counts(on_base)}")
    finally:
        hanging.close()
        for process in processes:
            if process.poll() is None:
                process.kill()
            process.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=2000, help="simulated shadow phases per challenger")
    parser.add_argument("--requests", type=int, default=5000, help="requests per champion per setting")
    parser.add_argument("--clients", type=int, default=1, help="client threads sending at once")
    parser.add_argument("--challenger-nice", type=int, default=19, help="the challenger's nice (default 19)")
    parser.add_argument("--skip-latency", action="store_true")
    args = parser.parse_args()
    decision(args.trials)
    if not args.skip_latency:
        latency(args.requests, args.clients, args.challenger_nice)
    return 0


if __name__ == "__main__":
    sys.exit(main())
