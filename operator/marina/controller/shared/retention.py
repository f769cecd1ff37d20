"""`spec.retention`: which stored versions of a Dataset (version folders) or a TrainingJob (model
artifacts) to delete once a new one is Ready, and deleting them with the operator's root credentials
(namespace identities have no delete permission).

A version is deleted only when every one of these holds:
- it is beyond the newest `keepLast`, counting the current version first whatever its age (a source
  that went back to earlier data makes an old version current again);
- no spec or status in the namespace references it: a TrainingJob's dataset version (status or spec),
  any s3:// URI in a Marina resource (a ModelDeployment's model, previous or failed model, a Dataset
  reading a prepared version as its CSV), or in a Marina Job still in the namespace (its arguments);
- it lies in the namespace's own storage area, under this resource's own folder (`<area>/<name>/`, which
  only this resource's Jobs write), and under no prefix an admin shares with other namespaces (their
  references cannot be seen from here);
- its content says it is this resource's: a version's dataset.json names this Dataset and that version;
  a model's bytes hash to the sha256 of its name (`model-<sha256>.json`, as artifact.save writes it).
A version folder without dataset.json (being written, or abandoned half-way) is never touched.

Datasets stored as content-addressed parts (`<name>/parts/<sha256>.parquet`, shared between versions and
named in each version's dataset.json) lose a part only when no remaining version's dataset.json names it,
every one of them could be read, the part was written before the current version was complete, and no
preparation pod of the Dataset is still running (those write parts before their dataset.json).

Failing to delete never changes Ready: a Warning event says what failed, and the next reconcile of a
Ready resource tries again (status.retention is only written after a complete run).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from marina import storage
from marina.contract import API_VERSION, DATASET_VERSION_PATTERN
from marina.controller.kube.client import KubeApi
from marina.controller.kube.paths import inside, normal_form
from marina.controller.kube.settings import Settings
from marina.controller.shared import builders
from marina.controller.shared.conditions import Outcome, State
from marina.controller.shared.fields import InvalidSpec
from marina.system.clock import utc_now

MANIFEST = "dataset.json"  # marina.data.dataset.MANIFEST_NAME: written last, so its presence means complete
MODEL_NAME = re.compile(r"model-([0-9a-f]{64})\.json")
PARTS = "parts"  # marina.data.parts.PARTS_FOLDER, next to the version folders
PART_NAME = re.compile(r"[0-9a-f]{64}\.parquet")
DATASET_VERSION = re.compile(DATASET_VERSION_PATTERN)
S3_URI = re.compile(r"s3://[^\s\"',]+")
REFERRING_KINDS = ("Dataset", "TrainingJob", "ModelDeployment")
EPOCH = datetime.fromtimestamp(0, UTC)

# --- what to delete (pure) ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Version:
    """One stored version: a dataset version folder or a model artifact."""

    id: str  # the dataset version, or the model's sha256
    uri: str  # the folder (dataset) or the object (model) status fields name
    modified: datetime
    objects: tuple[str, ...]  # what deleting the version removes
    proof: str  # the object whose content says whose version it is


@dataclass(frozen=True)
class Plan:
    keep: tuple[Version, ...]  # the current one first, then newest first
    delete: tuple[Version, ...]


def dataset_versions(folder: str, listing: Sequence[storage.StoredObject]) -> list[Version]:
    """The complete version folders directly under a Dataset's folder; the time of a version is when
    its dataset.json (written last) was written."""
    base = folder.rstrip("/") + "/"
    parts: dict[str, list[storage.StoredObject]] = {}
    for stored in listing:
        if stored.uri.startswith(base):
            version, _, rest = stored.uri[len(base) :].partition("/")
            if DATASET_VERSION.fullmatch(version) and rest:
                parts.setdefault(version, []).append(stored)
    versions = []
    for version, objects in sorted(parts.items()):
        manifest = next((o for o in objects if o.uri == f"{base}{version}/{MANIFEST}"), None)
        if manifest is not None:
            uris = tuple(sorted(o.uri for o in objects))
            versions.append(
                Version(version, f"{base}{version}", manifest.modified or EPOCH, uris, manifest.uri)
            )
    return versions


def named_in(
    folder: str, listing: Sequence[storage.StoredObject], name: re.Pattern[str]
) -> list[tuple[storage.StoredObject, re.Match[str]]]:
    """The objects directly in `folder` whose names match `name`, each with its match."""
    base = folder.rstrip("/") + "/"
    found = []
    for stored in listing:
        match = name.fullmatch(stored.uri[len(base) :]) if stored.uri.startswith(base) else None
        if match:
            found.append((stored, match))
    return found


def model_versions(folder: str, listing: Sequence[storage.StoredObject]) -> list[Version]:
    """The model artifacts directly under a TrainingJob's folder (`model-<sha256>.json`)."""
    return [
        Version(match.group(1), stored.uri, stored.modified or EPOCH, (stored.uri,), stored.uri)
        for stored, match in named_in(folder, listing, MODEL_NAME)
    ]


def references(objects: Iterable[Mapping[str, Any]]) -> frozenset[str]:
    """Every s3:// URI in the specs and statuses of `objects` (Marina resources and Jobs)."""
    found: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, str):
            found.update(uri.rstrip("/") for uri in S3_URI.findall(value))
        elif isinstance(value, Mapping):
            for inner in value.values():
                walk(inner)
        elif isinstance(value, list):
            for inner in value:
                walk(inner)

    for body in objects:
        walk(body.get("spec"))
        walk(body.get("status"))
    return frozenset(found)


def dataset_versions_in_use(training_jobs: Iterable[Mapping[str, Any]]) -> frozenset[str]:
    """The dataset versions TrainingJobs train on or pin (status.datasetVersion, spec.dataset.version).
    By version alone, whichever Dataset it names: a version is a content hash, so keeping a same-content
    version of another Dataset too only errs on the side of keeping."""
    versions = set()
    for body in training_jobs:
        versions.add((body.get("status") or {}).get("datasetVersion"))
        versions.add(((body.get("spec") or {}).get("dataset") or {}).get("version"))
    return frozenset(v for v in versions if isinstance(v, str) and v)


def is_referenced(version: Version, uris: frozenset[str], in_use: frozenset[str] = frozenset()) -> bool:
    """Whether a URI names the version or something inside it, or its id is in use."""
    inside = version.uri.rstrip("/") + "/"
    return version.id in in_use or any(uri == version.uri or uri.startswith(inside) for uri in uris)


def plan(
    versions: Sequence[Version],
    current: str,
    keep_last: int,
    protected: Callable[[Version], bool],
) -> Plan:
    """Keep the current version and the newest others up to `keep_last` in all; of the rest, delete
    those not `protected` (referenced, outside the resource's own area, shared)."""
    ordered = sorted(versions, key=lambda v: (v.id != current, -v.modified.timestamp(), v.id))
    delete = tuple(v for v in ordered[keep_last:] if not protected(v))
    return Plan(tuple(v for v in ordered if v not in delete), delete)


def deletable_area(uri: str, own_area: str, shared: Sequence[str]) -> bool:
    """In the namespace's own area (plainly, after normalising) and in no prefix shared with others."""
    normal = normal_form(uri)
    return (
        normal == uri.rstrip("/") and inside(normal + "/", (own_area,)) and not inside(normal + "/", shared)
    )


def owns_dataset(manifest: bytes, name: str, version: Version) -> bool:
    """The version's dataset.json says it was prepared for Dataset `name` as that version."""
    try:
        description = json.loads(manifest)
    except ValueError:
        return False
    return (
        isinstance(description, dict)
        and description.get("name") == name
        and description.get("version") == version.id
    )


def owns_model(content: bytes, name: str, version: Version) -> bool:
    """The artifact's bytes hash to the sha256 its name carries (`name`: only this TrainingJob's Jobs
    write its folder; an artifact records its dataset, not its TrainingJob)."""
    del name
    return hashlib.sha256(content).hexdigest() == version.id


def parts_in(folder: str, listing: Sequence[storage.StoredObject]) -> list[storage.StoredObject]:
    """The data parts directly in a Dataset's parts folder."""
    return [stored for stored, _ in named_in(f"{folder.rstrip('/')}/{PARTS}", listing, PART_NAME)]


def parts_named(version: Version, manifest: bytes) -> frozenset[str] | None:
    """The part URIs a version's dataset.json names (none for the first format, train.csv and test.csv);
    None when it cannot be read, so that nothing is collected."""
    try:
        description = json.loads(manifest)
        stored = description.get("parts")
        if stored is None:
            return frozenset()
        folder = normal_form(f"{version.uri}/{stored['folder']}")
        names = [str(p["name"]) for split in ("train", "test") for p in stored[split]["parts"]]
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    return None if folder is None else frozenset(f"{folder}/{name}" for name in names)


def unreferenced_parts(
    parts: Sequence[storage.StoredObject], named: Sequence[frozenset[str] | None], before: datetime
) -> tuple[str, ...]:
    """The parts no remaining version names and written before `before`; none if a manifest was unreadable."""
    if any(n is None for n in named):
        return ()
    used = frozenset().union(*(n for n in named if n is not None))
    return tuple(p.uri for p in parts if p.uri not in used and p.modified is not None and p.modified < before)


def due(previous: Mapping[str, Any] | None, keep_last: int, current: str) -> bool:
    """A run is due for a new current version or a changed keepLast (not on every reconcile)."""
    if not isinstance(previous, Mapping):
        return True
    kept = previous.get("kept") or [None]
    return previous.get("keepLast") != keep_last or kept[0] != current


def status_of(keep_last: int, kept: Sequence[Version], deleted: Sequence[Version]) -> dict[str, Any]:
    return {
        "keepLast": keep_last,
        "kept": [v.id for v in kept],
        "deleted": [v.id for v in deleted],
        "lastRun": utc_now(),
    }


# --- kinds ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Kind:
    """What retention keeps for one kind of resource (each kind defines its own: `datasets.RETENTION`,
    `trainingjobs.RETENTION`)."""

    purpose: str  # settings.DATASETS or MODELS: the storage area
    noun: str
    versions: Callable[[str, Sequence[storage.StoredObject]], list[Version]]
    owns: Callable[[bytes, str, Version], bool]
    current: Callable[[Mapping[str, Any]], str | None]  # the current version's id, from status fields
    keep_last: Callable[[Mapping[str, Any] | None], int | None]  # from the spec (InvalidSpec if invalid)
    # Dataset versions: also kept while a TrainingJob trains on or pins one (by id), and their data parts
    # are collected once no kept version names them.
    data: bool = False


# --- doing it (Kubernetes and storage calls) ----------------------------------------------------------


@dataclass(frozen=True)
class Run:
    kept: tuple[Version, ...]
    deleted: tuple[Version, ...]
    error: storage.StorageError | None = None
    parts: int = 0  # unreferenced data parts deleted


def follow(kube: KubeApi, settings: Settings, body: Mapping[str, Any], outcome: Outcome, kind: Kind) -> None:
    """After a reconcile: apply spec.retention when the resource is Ready with a version retention has
    not seen yet (status.retention), and forget status.retention when spec.retention goes."""
    try:
        keep_last = kind.keep_last(body.get("spec"))
    except InvalidSpec:
        return  # the reconcile reported it
    previous = (body.get("status") or {}).get("retention")
    if keep_last is None:
        if previous is not None:
            kube.patch_status(body, {"retention": None})
        return
    current = kind.current(outcome.fields)
    if outcome.state is not State.READY or not current or not due(previous, keep_last, str(current)):
        return
    if not due(recorded(kube, body), keep_last, str(current)):
        return  # kopf's body was older than a run already recorded for this version
    run = apply(kube, settings, body, kind, keep_last, str(current))
    if run.error is not None:
        done = f"deleted {_ids(run.deleted)}, then " if run.deleted else ""
        kube.event(
            body, "Warning", "RetentionFailed", f"retention: {done}{run.error}; retried on the next reconcile"
        )
        return
    kube.patch_status(body, {"retention": status_of(keep_last, run.kept, run.deleted)})
    if run.deleted or run.parts:
        kube.event(
            body,
            "Normal",
            "RetentionApplied",
            f"deleted {len(run.deleted)} {kind.noun} beyond keepLast {keep_last}: {_ids(run.deleted)}"
            f"{_parts(run.parts)}; kept {_ids(run.kept)}",
        )


def recorded(kube: KubeApi, body: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """status.retention as the API server holds it now. kopf may hand a reconcile a body read before the
    previous run's status write arrived; a second run for the same version would find nothing left to
    delete and overwrite that run's record of what it deleted."""
    meta = body["metadata"]
    fresh = kube.get(body["apiVersion"], body["kind"], meta["namespace"], meta["name"]) or {}
    return (fresh.get("status") or {}).get("retention")


def apply(
    kube: KubeApi, settings: Settings, body: Mapping[str, Any], kind: Kind, keep_last: int, current: str
) -> Run:
    """List the resource's versions, plan, and delete the planned ones that prove to be its own."""
    meta = body["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    folder = f"{settings.area(kind.purpose, namespace)}{name}"
    try:
        listing = storage.list_objects(folder)
    except storage.StorageError as error:
        return Run((), (), error)
    versions = kind.versions(folder, listing)
    uris, in_use = namespace_references(kube, namespace)
    area = settings.area(kind.purpose, namespace)

    def protected(version: Version) -> bool:
        return is_referenced(version, uris, in_use if kind.data else frozenset()) or not deletable_area(
            version.uri, area, settings.shared_prefixes
        )

    chosen = plan(versions, current, keep_last, protected)
    deleted: list[Version] = []
    for version in chosen.delete:
        try:
            if kind.owns(storage.read_bytes(version.proof), name, version):
                storage.delete_objects(version.objects)
                deleted.append(version)
        except storage.StorageError as error:
            return Run(_remaining(versions, deleted), tuple(deleted), error)
    kept = _remaining(chosen.keep + chosen.delete, deleted)
    if not kind.data or preparing(kube, body):
        return Run(kept, tuple(deleted))
    try:
        collected = collect_parts(folder, listing, kept, current)
    except storage.StorageError as error:
        return Run(kept, tuple(deleted), error)
    return Run(kept, tuple(deleted), parts=collected)


def preparing(kube: KubeApi, body: Mapping[str, Any]) -> bool:
    """Whether a preparation pod of this Dataset (the run or reduce, or a shard) may still write parts."""
    owner = builders.Owner.of(body)
    for component in ("prepare", "shard"):
        selector = f"{owner.label_key}={owner.name},{builders.COMPONENT_LABEL}={component}"
        pods = kube.list("v1", "Pod", owner.namespace, selector)
        if any((pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed") for pod in pods):
            return True
    return False


def collect_parts(
    folder: str, listing: Sequence[storage.StoredObject], kept: Sequence[Version], current: str
) -> int:
    """Delete the data parts no kept version names; returns how many."""
    newest = next((v for v in kept if v.id == current), None)
    parts = parts_in(folder, listing)
    if newest is None or not parts:
        return 0
    named = [parts_named(v, storage.read_bytes(v.proof)) for v in kept]
    unused = unreferenced_parts(parts, named, newest.modified)
    storage.delete_objects(unused)
    return len(unused)


def namespace_references(kube: KubeApi, namespace: str) -> tuple[frozenset[str], frozenset[str]]:
    """(every s3:// URI in the namespace's Marina resources and Jobs, the dataset versions in use)."""
    resources = {kind: kube.list(API_VERSION, kind, namespace) for kind in REFERRING_KINDS}
    jobs = kube.list("batch/v1", "Job", namespace, f"app.kubernetes.io/managed-by={builders.MANAGED_BY}")
    everything = [body for bodies in resources.values() for body in bodies] + jobs
    return references(everything), dataset_versions_in_use(resources["TrainingJob"])


def _remaining(versions: Sequence[Version], deleted: Sequence[Version]) -> tuple[Version, ...]:
    return tuple(v for v in versions if v not in deleted)


def _parts(count: int) -> str:
    return f" and {count} data parts no kept version names" if count else ""


def _ids(versions: Sequence[Version]) -> str:
    return ", ".join(v.id for v in versions) or "none"
