"""The partial results of sharded runs go once a run's result is the status: only the files shards write,
only in the resource's runs' folders (the finished run's and abandoned ones'), only on the reconcile that
finishes a sharded run; a failure is a Warning."""

from __future__ import annotations

from typing import Any

import pytest

from marina import storage
from marina.controller.kube.settings import DATASETS, MODELS, Settings
from marina.controller.shared import partials
from marina.controller.shared.conditions import Outcome, State

SETTINGS = Settings(s3_bucket="marina", probe_storage=False)
READY = {"conditions": [{"type": "Ready", "status": "True"}]}
SHA = "ab" * 32


def finished(digest: str = "d1", shards: int = 2) -> Outcome:
    return Outcome(State.READY, "Prepared", "ok", {"inputsHash": digest, "version": "v", "shards": shards})


@pytest.mark.parametrize(
    ("status", "outcome", "expected"),
    [
        ({}, finished(), "d1"),  # the first run
        ({"inputsHash": "d0", **READY}, finished(), "d1"),  # a new input's run
        ({"inputsHash": "d1"}, finished(), "d1"),  # the run was Progressing until now
        ({"inputsHash": "d1", **READY}, finished(), None),  # Ready already: not again
        ({}, finished(shards=1), None),  # a run in one pod left no partials
        ({}, Outcome(State.PROGRESSING, "Preparing", "...", {"inputsHash": "d1", "shards": 2}), None),
        ({}, Outcome(State.READY, "Prepared", "ok", {"shards": 2}), None),
    ],
)
def test_a_run_is_finished_on_the_reconcile_that_makes_its_result_the_status(
    status: dict[str, Any], outcome: Outcome, expected: str | None
) -> None:
    assert partials.finished_run({"status": status}, outcome) == expected


@pytest.fixture
def store(s3_env: Any) -> None:
    """The session's MinIO with an empty bucket `marina`."""
    storage.write_bytes("s3://marina/.keep", b"")
    storage.delete_objects([o.uri for o in storage.list_objects("s3://marina/")] + ["s3://marina/.keep"])


def stored() -> set[str]:
    return {o.uri for o in storage.list_objects("s3://marina/")}


@pytest.mark.parametrize(("kind", "purpose"), [("Dataset", DATASETS), ("TrainingJob", MODELS)])
def test_only_the_files_shards_wrote_in_the_runs_folders_go(
    kube: Any, store: None, kind: str, purpose: str
) -> None:
    """The finished run's folder and an abandoned run's (d0, whose inputs changed while its shards ran)."""
    prefix = f"{SETTINGS.area(purpose, 'default')}lines"
    run, abandoned = partials.folder(prefix, "d1"), partials.folder(prefix, "d0")
    shards = [f"{run}/shard-0-of-2-{SHA}.json", f"{run}/shard-1-of-2-{SHA}.json", f"{run}/{SHA}.parquet"]
    shards += [f"{abandoned}/shard-0-of-3-{SHA}.json", f"{abandoned}/{SHA}.parquet"]
    kept = [f"{run}/notes.txt", f"{run}/deeper/shard-0-of-2-{SHA}.json", f"{prefix}/parts/{SHA}.parquet"]
    kept += [
        f"{prefix}/partials/shard-0-of-2-{SHA}.json",
        f"{prefix}/partials-old/d0/shard-0-of-2-{SHA}.json",
    ]
    kept += [f"{SETTINGS.area(purpose, 'default')}lines2/partials/d0/shard-0-of-2-{SHA}.json"]  # another's
    for uri in shards + kept:
        storage.write_bytes(uri, b"{}")
    body = kube.add_resource(kind, "lines", {}, {"inputsHash": "d0", **READY})

    partials.collect(kube, SETTINGS, body, finished("d1"), purpose)

    assert stored() == set(kept)
    assert not kube.events


def test_nothing_is_listed_on_a_reconcile_of_a_resource_ready_already(
    kube: Any, store: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = kube.add_resource("Dataset", "lines", {}, {"inputsHash": "d1", **READY})
    monkeypatch.setattr(storage, "list_objects", lambda *_: pytest.fail("listed"))
    partials.collect(kube, SETTINGS, body, finished("d1"), DATASETS)


def test_outside_the_namespace_s_own_unshared_area_nothing_goes(kube: Any, store: None) -> None:
    shared = Settings(s3_bucket="marina", probe_storage=False, shared_prefixes=("s3://marina/datasets/",))
    uri = partials.folder(f"{shared.area(DATASETS, 'default')}lines", "d1") + f"/shard-0-of-1-{SHA}.json"
    storage.write_bytes(uri, b"{}")
    body = kube.add_resource("Dataset", "lines", {}, {})
    partials.collect(kube, shared, body, finished("d1"), DATASETS)
    assert stored() == {uri}


def test_unreachable_storage_is_a_warning(kube: Any, store: None, monkeypatch: pytest.MonkeyPatch) -> None:
    body = kube.add_resource("Dataset", "lines", {}, {})
    monkeypatch.setenv(storage.ENDPOINT_ENV, "http://127.0.0.1:1")
    partials.collect(kube, SETTINGS, body, finished("d1"), DATASETS)
    assert [(e[1], e[2]) for e in kube.events] == [("Warning", "PartialsNotDeleted")]
    assert "d1" in kube.events[0][3]
