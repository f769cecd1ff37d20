"""Single-row v2 throughput with the payload log at sample rate 1 against without, in one process.

Two apps serve the same model: `off` (no payload log) and `on` (every request logged, parts written by the
writer thread to a local store, or to MinIO when MARINA_S3_ENDPOINT and its keys are set and --prefix
names an s3:// prefix). Each round sends `--requests` single-row v2 requests straight into each app's ASGI
callable (no sockets: the app's own cost per request, where the log's hot path is, and the writer thread
competing for the interpreter as it does in a pod); the order alternates every round. Reported: the median
over rounds of requests per second for each, their ratio, and the median of each round's own ratio (the
two apps of one round see the same machine, so on a machine whose load drifts between rounds this is the
steadier figure). The target is at least 0.90.

With --storage-down the `on` app logs to an s3:// prefix on an endpoint where nothing listens (storage
stopped): its writer thread keeps trying while the buffer fills, and every row beyond it is dropped and
counted. Reported besides: the rows written, dropped, failed and still buffered (the target: the same
requests per second as without the log, and every row past the buffer counted as dropped).

    PYTHONPATH=operator python benchmarks/payload_log_bench.py [--requests 20000] [--rounds 7]
    PYTHONPATH=operator python benchmarks/payload_log_bench.py --storage-down
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import tempfile
import time
from typing import Any

from marina import storage
from marina.model.artifact import ModelArtifact
from marina.serving.app import ServingApp
from marina.serving.model import ServedModel
from marina.serving.payloads import FAILED, PREDICTIONS, WRITTEN, LogSettings

FEATURES = [f"x{i}" for i in range(10)]
BODY = json.dumps(
    {"inputs": [{"name": "x", "datatype": "FP64", "shape": [1, 10], "data": [0.5 * i for i in range(10)]}]}
).encode()
WARM_UP = 2000
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
    parser.add_argument("--storage-down", action="store_true", help="log to storage where nothing listens")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder, socket.socket() as closed:
        if args.storage_down:
            closed.bind(("127.0.0.1", 0))  # bound, never listening: every connection is refused
            os.environ.pop(storage.LOCAL_STORE_ENV, None)
            os.environ[storage.ENDPOINT_ENV] = f"http://127.0.0.1:{closed.getsockname()[1]}"
            os.environ[storage.ACCESS_KEY_ENV] = "nobody"
            os.environ[storage.SECRET_KEY_ENV] = "nothing-at-all"
        elif not args.prefix:
            os.environ[storage.LOCAL_STORE_ENV] = folder
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
        asyncio.run(_round(off, WARM_UP))  # warm up both
        asyncio.run(_round(on, WARM_UP))
        for index in range(args.rounds):
            order = [("off", off), ("on", on)] if index % 2 == 0 else [("on", on), ("off", off)]
            for name, app in order:
                rates[name].append(asyncio.run(_round(app, args.requests)))
        log = on.payloads
        assert log is not None
        buffer = log.buffers[PREDICTIONS]
        writing = buffer.taken - buffer.counts[WRITTEN] - buffer.counts[FAILED]  # the part being written
        rows = {**buffer.counts, "buffered": buffer.rows, "being written": writing}
        on.close()
    median = {name: statistics.median(values) for name, values in rates.items()}
    said = " (storage down)" if args.storage_down else ""
    print(f"single-row v2, {args.requests} requests x {args.rounds} rounds (median requests/s){said}:")
    print(f"  log off  {median['off']:10.0f}   rounds {', '.join(f'{r:.0f}' for r in rates['off'])}")
    print(f"  log 1.0  {median['on']:10.0f}   rounds {', '.join(f'{r:.0f}' for r in rates['on'])}")
    counted = ", ".join(f"{outcome} {count}" for outcome, count in rows.items())
    paired = statistics.median(on / off for on, off in zip(rates["on"], rates["off"], strict=True))
    sent = WARM_UP + args.rounds * args.requests
    print(f"  ratio    {median['on'] / median['off']:10.3f}   of the medians")
    print(f"  ratio    {paired:10.3f}   median of the rounds' own (rows {counted}; {sent} sent)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
