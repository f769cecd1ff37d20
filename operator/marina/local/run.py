"""`marina run -f PATH`: the resources users `kubectl apply`, run on this machine in one process, with no
cluster and no MinIO.

    marina run -f manifests/samples/ [-f more.yaml] [--store .marina] [--namespace default]
               [--once] [--timeout 600] [--wide]

The same code the operator runs decides (each kind's reconcile, with its validation, reasons and
messages), and the same commands its Jobs run do the work (`marina prepare`, `train`, `evaluate`,
`predict`) as processes; a ModelDeployment is served on localhost by `marina serve`. Object storage is a
folder (`--store`, default `.marina`; `s3://` URIs are its files), so a Dataset prepared here has the
version the cluster gives it, and what is done is kept: run it again and nothing is prepared or trained
twice. It prints the resources as `kubectl get marina` does whenever one changes, then one prediction
from each served model, and serves until interrupted (`--once`: exit once everything is settled).
"""

from __future__ import annotations

import argparse
import json
import time
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from marina import storage
from marina.contract import KINDS, schema
from marina.controller.kube.settings import Settings
from marina.controller.reconcilers import RECONCILERS
from marina.controller.shared import credentials
from marina.controller.shared.conditions import ready_condition
from marina.local import documents, table
from marina.local.api import LocalApi
from marina.local.workloads import LocalWorkloads, environment
from marina.model import artifact
from marina.storage import Credentials

POLL_SECONDS = 0.2
STATE = "state"  # under the store: each resource's last status, so a second run starts where one ended


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-f",
        "--filename",
        action="append",
        required=True,
        type=Path,
        metavar="PATH",
        help="a YAML/JSON file or a folder of them, as kubectl apply -f takes (repeatable)",
    )
    parser.add_argument(
        "--store",
        default=".marina",
        metavar="DIR",
        help="the folder that stands for object storage, and keeps what is done (default: .marina)",
    )
    parser.add_argument(
        "--namespace", "-n", default="default", help="the namespace of objects that name none"
    )
    parser.add_argument("--once", action="store_true", help="exit once every resource is settled")
    parser.add_argument(
        "--timeout", type=float, default=600.0, help="seconds to wait for everything to settle"
    )
    parser.add_argument("--wide", action="store_true", help="every printer column, as kubectl get -o wide")


class LocalIdentities:
    """The namespace's storage identity, when storage is a folder: anything may write it."""

    def ensure(self, settings: Settings, namespace: str, known: Credentials | None) -> Credentials:
        return Credentials("marina-local", "marina-local")

    def is_root(self, held: Credentials) -> bool:
        return False


@dataclass
class Run:
    """One `marina run`: the resources, the local API they live in and what it printed last."""

    api: LocalApi
    workloads: LocalWorkloads
    settings: Settings
    state: Path
    events: list[str] = field(default_factory=list)
    printed: str = ""

    def resources(self) -> list[dict[str, Any]]:
        marina = {kind.kind for kind in KINDS}
        return [body for (_, kind, _, _), body in sorted(self.api.objects.items()) if kind in marina]

    def reconcile_all(self) -> None:
        for kind, reconcile in RECONCILERS.items():
            for body in [b for b in self.resources() if b["kind"] == kind]:
                current = self.api.get(*LocalApi.key(body))
                if current is not None:
                    reconcile(self.api, self.settings, current)
        self.workloads.refresh(self.api)

    def show(self, wide: bool) -> None:
        text = table.tables(self.resources(), wide)
        if text != self.printed:
            print(text + "\n", flush=True)
            self.printed = text

    def save(self) -> None:
        for body in self.resources():
            path = (
                self.state / body["metadata"]["namespace"] / body["kind"] / f"{body['metadata']['name']}.json"
            )
            path.parent.mkdir(parents=True, exist_ok=True)
            kept = {
                "metadata": {k: body["metadata"].get(k) for k in ("uid", "generation", "creationTimestamp")},
                "spec": body.get("spec"),
                "status": body.get("status") or {},
            }
            path.write_text(json.dumps(kept, sort_keys=True))


def settled(body: Mapping[str, Any]) -> bool:
    status = body.get("status") or {}
    if status.get("observedGeneration") != body["metadata"].get("generation"):
        return False
    stalled = any(
        c.get("type") == "Stalled" and c.get("status") == "True" for c in status.get("conditions") or []
    )
    return stalled or ready_condition(status).get("status") == "True"


def restore(body: dict[str, Any], state: Path) -> dict[str, Any]:
    """The resource with what the last run left: its status, and its generation (one more if its spec
    changed since), so a settled resource stays settled and a changed one is reconciled again."""
    path = state / body["metadata"]["namespace"] / body["kind"] / f"{body['metadata']['name']}.json"
    if not path.exists():
        return body
    kept = json.loads(path.read_text())
    generation = int(kept["metadata"].get("generation") or 1) + (kept.get("spec") != body.get("spec"))
    metadata = {**body["metadata"], **kept["metadata"], "generation": generation}
    return {**body, "metadata": metadata, "status": kept.get("status") or {}}


def load(paths: list[Path], namespace: str) -> tuple[list[dict[str, Any]], list[str]]:
    """The resources, or the API server's refusals: each invalid one named with its field and problem."""
    found = documents.read(paths, namespace)
    kinds = {kind.kind: kind for kind in KINDS}
    refused = [
        f'The {body["kind"]} "{body["metadata"]["name"]}" is invalid: {problem}'
        for body in found.resources
        for problem in schema.violations(kinds[body["kind"]], body)
    ]
    for skipped in found.skipped:
        print(f"skipped {skipped}: not a Marina resource", flush=True)
    return found.resources, refused


def run(args: argparse.Namespace) -> int:
    try:
        resources, refused = load(args.filename, args.namespace)
    except documents.DocumentError as error:
        print(f"marina run: error: {error}", flush=True)
        return 1
    for line in refused:
        print(f"error: {line}", flush=True)
    if refused:
        return 1
    store = Path(args.store)
    local = None if args.store.startswith("s3://") else store / "objects"
    if local is not None:
        import os

        os.environ[storage.LOCAL_STORE_ENV] = str(local.resolve())
    credentials.use(LocalIdentities())
    workloads = LocalWorkloads(store / "logs", environment(local.resolve() if local else None))
    runner = Run(
        LocalApi(workloads, lambda *event: None), workloads, Settings(probe_storage=False), store / STATE
    )
    runner.api.on_event = lambda obj, kind, reason, message: runner.events.append(
        f"{kind} {reason} {obj}: {message}"
    )
    for body in resources:
        runner.api.put(restore(body, runner.state))
    try:
        return _loop(runner, args)
    finally:
        runner.save()
        workloads.stop_all()


def _loop(runner: Run, args: argparse.Namespace) -> int:
    deadline = time.monotonic() + args.timeout
    while True:
        runner.reconcile_all()
        runner.show(args.wide)
        if all(settled(body) for body in runner.resources()):
            break
        if time.monotonic() > deadline:
            print(f"marina run: not settled after {args.timeout:g} s", flush=True)
            return 1
        time.sleep(POLL_SECONDS)
    runner.save()
    for line in answers(runner):
        print(line, flush=True)
    failed = [b for b in runner.resources() if ready_condition(b.get("status")).get("status") != "True"]
    if args.once:
        return 1 if failed else 0
    print("serving until interrupted (Ctrl-C)", flush=True)
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        return 1 if failed else 0


def answers(runner: Run) -> Iterable[str]:
    """One prediction from each served model, for a row of its training means, through localhost."""
    for body in runner.resources():
        served = ((body.get("status") or {}).get("model") or {}).get("uri")
        if body["kind"] != "ModelDeployment" or not served:
            continue
        name, namespace = body["metadata"]["name"], body["metadata"]["namespace"]
        for url in runner.workloads.urls(namespace, name)[:1]:
            request = json.dumps({"inputs": mean_row(artifact.load(str(served)))}).encode()
            sent = urllib.request.Request(
                f"{url}/v2/models/{name}/infer", data=request, headers={"Content-Type": "application/json"}
            )
            with urllib.request.urlopen(sent, timeout=5) as answer:
                prediction = json.loads(answer.read())["outputs"][0]["data"][0]
            yield f"ModelDeployment {name} answers at {url}/v2/models/{name}/infer"
            yield f"  {request.decode()}"
            yield f"  -> {{predict: {prediction}}}"


def mean_row(model: artifact.ModelArtifact) -> list[dict[str, Any]]:
    """An Open Inference v2 `inputs` list for one row: every number at its training mean, every
    category at its first value."""
    means = {name: float(stats.get("mean", 0.0)) for name, stats in model.feature_statistics.items()}
    if not model.inputs:
        row = [means.get(name, 0.0) for name in model.feature_names]
        return [{"name": "input-0", "datatype": "FP64", "shape": [1, len(row)], "data": row}]
    tensors = []
    for item in model.inputs:
        categories = item.get("categories") or []
        value: Any = categories[0] if categories else means.get(str(item["name"]), 0.0)
        tensors.append(
            {
                "name": item["name"],
                "datatype": "BYTES" if categories else "FP64",
                "shape": [1],
                "data": [value],
            }
        )
    return tensors
