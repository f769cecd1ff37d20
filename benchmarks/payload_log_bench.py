"""Single-row v2 throughput with the payload log at sample rate 1 against without, in one process.

Two apps serve the same model: `off` (no payload log) and `on` (every request logged, parts written by the
writer thread to a local store, or to MinIO when MARINA_S3_ENDPOINT and its keys are set and --prefix
names an s3:// prefix). Each round sends `--requests` single-row v2 requests straight into each app's ASGI
callable (no sockets: the app's own cost per request, where the log's hot path is, and the writer thread
competing for the interpreter as it does in a pod); the order alternates every round. Reported: the median
over rounds of requests per second for each, and their ratio (the target is at least 0.90).

    PYTHONPATH=operator python benchmarks/payload_log_bench.py [--requests 20000] [--rounds 7]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from typing import Any

from marina.model.artifact import ModelArtifact
from marina.serving.app import ServingApp
from marina.serving.model import ServedModel
from marina.serving.payloads import PREDICTIONS, WRITTEN, LogSettings

FEATURES = [f"x{i}" for i in range(10)]
BODY = json.dumps(
    {"inputs": [{"name": "x", "datatype": "FP64", "shape": [1, 10], "data": [0.5 * i for i in range(10)]}]}
).encode()
SCOPE: dict[str, Any] = {
    "type": "http",
    "method": "POST",
    "path": "/v2/models/bench/infer",
    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())],
}


async def _round(app: ServingApp, requests: int) -> float:
    """Requests per second answering `requests` single-row requests one after the other."""
    message = {"type": "http.request", "body": BODY, "more_body": False}

    async def receive() -> dict[str, Any]:
        return message

    async def send(reply: dict[str, Any]) -> None:
        if reply["type"] == "http.response.start":
            assert reply["status"] == 200, reply

    started = time.perf_counter()
    for _ in range(requests):
        await app(dict(SCOPE), receive, send)
    return requests / (time.perf_counter() - started)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--prefix", help="where the log goes (default: a local store in a temporary folder)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        if not args.prefix:
            os.environ["MARINA_LOCAL_STORE"] = folder
        prefix = args.prefix or "s3://bench/logs/ns/bench/"
        artifact = ModelArtifact(
            coefficients=[0.1 * i for i in range(10)], intercept=1.0, feature_names=FEATURES, dataset={}
        )
        model = ServedModel.from_artifact(artifact, "bench", "memory")
        off = ServingApp(model)
        on = ServingApp(
            model, logging=LogSettings(prefix, sample_rate=1.0, flush_rows=10_000, flush_seconds=60)
        )
        rates: dict[str, list[float]] = {"off": [], "on": []}
        asyncio.run(_round(off, 2000))  # warm up both
        asyncio.run(_round(on, 2000))
        for index in range(args.rounds):
            order = [("off", off), ("on", on)] if index % 2 == 0 else [("on", on), ("off", off)]
            for name, app in order:
                rates[name].append(asyncio.run(_round(app, args.requests)))
        log = on.payloads
        assert log is not None
        on.close()
        written = log.buffers[PREDICTIONS].counts[WRITTEN]
    median = {name: statistics.median(values) for name, values in rates.items()}
    print(f"single-row v2, {args.requests} requests x {args.rounds} rounds (median requests/s):")
    print(f"  log off  {median['off']:10.0f}   rounds {', '.join(f'{r:.0f}' for r in rates['off'])}")
    print(f"  log 1.0  {median['on']:10.0f}   rounds {', '.join(f'{r:.0f}' for r in rates['on'])}")
    print(f"  ratio    {median['on'] / median['off']:10.3f}   (rows written: {written})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
