"""spec.retention: only versions beyond the newest keepLast, that nothing references, in the namespace's
own area and provably the resource's own, are deleted; a failure is a Warning event, never Ready=False."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from marina import storage
from marina.controller.datasets import reconcile as datasets
from marina.controller.datasets import spec as dataset_spec
from marina.controller.kube.settings import Settings
from marina.controller.shared import builders, retention
from marina.controller.shared.conditions import Outcome, State
from marina.controller.shared.fields import InvalidSpec
from marina.controller.shared.retention import Version
from marina.controller.trainingjobs import reconcile as trainingjobs
from marina.controller.trainingjobs import spec as trainingjob_spec

T0 = datetime(2026, 1, 1, tzinfo=UTC)
FOLDER = "s3://marina/datasets/default/lines"
AREA = "s3://marina/datasets/default/"
V = [f"{i:016x}" for i in range(1, 6)]  # dataset versions, v[0] oldest


def version(id_: str, minutes: int, folder: str = FOLDER) -> Version:
    return Version(id_, f"{folder}/{id_}", T0 + timedelta(minutes=minutes), (f"{folder}/{id_}/x",), "")


def ids(versions: tuple[Version, ...]) -> list[str]:
    return [v.id for v in versions]


# --- the plan -----------------------------------------------------------------------------------------


def test_keeps_the_newest_and_deletes_the_rest() -> None:
    versions = [version(v, i) for i, v in enumerate(V)]
    chosen = retention.plan(versions, V[4], 2, lambda v: False)
    assert ids(chosen.keep) == [V[4], V[3]]
    assert sorted(ids(chosen.delete)) == sorted(V[:3])


def test_the_current_version_counts_first_even_when_older() -> None:
    """A source that went back to earlier data makes an old version current: it is never deleted."""
    versions = [version(v, i) for i, v in enumerate(V[:3])]
    chosen = retention.plan(versions, V[0], 1, lambda v: False)
    assert ids(chosen.keep) == [V[0]]
    assert sorted(ids(chosen.delete)) == [V[1], V[2]]


def test_protected_versions_beyond_keep_last_stay() -> None:
    versions = [version(v, i) for i, v in enumerate(V[:3])]
    chosen = retention.plan(versions, V[2], 1, lambda v: v.id == V[0])
    assert ids(chosen.delete) == [V[1]]
    assert ids(chosen.keep) == [V[2], V[0]]


def test_references_are_every_s3_uri_of_specs_statuses_and_job_arguments() -> None:
    bodies = [
        {"spec": {"model": {"uri": "s3://marina/models/default/a/model-1.json"}}},
        {"status": {"previousModel": {"uri": "s3://marina/models/default/a/model-2.json"}}},
        {
            "spec": {
                "template": {"spec": {"containers": [{"args": ["--data=s3://marina/datasets/default/d/v/"]}]}}
            }
        },
        {"metadata": {"annotations": {"x": "s3://marina/not/a/reference"}}},
    ]
    assert retention.references(bodies) == {
        "s3://marina/models/default/a/model-1.json",
        "s3://marina/models/default/a/model-2.json",
        "s3://marina/datasets/default/d/v",
    }


def test_a_version_is_referenced_by_its_uri_anything_inside_it_or_its_id_in_use() -> None:
    v = version(V[0], 0)
    assert retention.is_referenced(v, frozenset({v.uri}))
    assert retention.is_referenced(v, frozenset({f"{v.uri}/train.csv"}))
    assert retention.is_referenced(v, frozenset(), frozenset({V[0]}))
    assert not retention.is_referenced(v, frozenset({f"{v.uri}0", FOLDER}), frozenset({V[1]}))


def test_training_jobs_use_the_versions_they_trained_on_or_pin() -> None:
    jobs = [
        {"spec": {"dataset": {"name": "d"}}, "status": {"datasetVersion": V[0]}},
        {"spec": {"dataset": {"name": "d", "version": V[1]}}},
        {"spec": {"dataset": {"name": "d"}}},
    ]
    assert retention.dataset_versions_in_use(jobs) == {V[0], V[1]}


def test_only_the_namespace_s_own_unshared_area_is_deletable() -> None:
    assert retention.deletable_area(f"{FOLDER}/{V[0]}", AREA, ())
    assert not retention.deletable_area(f"s3://marina/datasets/other/lines/{V[0]}", AREA, ())
    assert not retention.deletable_area(f"{FOLDER}/../../other/x/{V[0]}", AREA, ())
    assert not retention.deletable_area(f"{FOLDER}/{V[0]}", AREA, ("s3://marina/datasets/default/",))


# --- listings and ownership ---------------------------------------------------------------------------


def stored(uri: str, minutes: int = 0) -> storage.StoredObject:
    return storage.StoredObject(uri, 1, T0 + timedelta(minutes=minutes))


def test_dataset_versions_are_complete_version_folders_of_this_dataset_only() -> None:
    listing = [
        stored(f"{FOLDER}/{V[0]}/train.csv"),
        stored(f"{FOLDER}/{V[0]}/dataset.json", 5),
        stored(f"{FOLDER}/{V[1]}/train.csv"),  # no dataset.json yet: being written
        stored(f"{FOLDER}/notes.txt"),
        stored(f"{FOLDER}/not-a-version/dataset.json"),
        stored(f"{FOLDER}-2/{V[2]}/dataset.json"),  # another Dataset whose name starts alike
    ]
    (found,) = retention.dataset_versions(FOLDER, listing)
    assert (found.id, found.uri, found.modified) == (V[0], f"{FOLDER}/{V[0]}", T0 + timedelta(minutes=5))
    assert found.objects == (f"{FOLDER}/{V[0]}/dataset.json", f"{FOLDER}/{V[0]}/train.csv")
    assert found.proof == f"{FOLDER}/{V[0]}/dataset.json"


def test_model_versions_are_content_addressed_artifacts_directly_in_the_folder() -> None:
    folder, sha = "s3://marina/models/default/lines", "b" * 64
    listing = [
        stored(f"{folder}/model-{sha}.json"),
        stored(f"{folder}/model-latest.json"),
        stored(f"{folder}/results/model-{sha}.json"),
        stored(f"{folder}-2/model-{sha}.json"),
    ]
    (found,) = retention.model_versions(folder, listing)
    assert (found.id, found.uri, found.objects) == (sha, f"{folder}/model-{sha}.json", (found.uri,))


def test_ownership_is_proved_by_content() -> None:
    v = version(V[0], 0)
    assert retention.owns_dataset(json.dumps({"name": "lines", "version": V[0]}).encode(), "lines", v)
    assert not retention.owns_dataset(json.dumps({"name": "other", "version": V[0]}).encode(), "lines", v)
    assert not retention.owns_dataset(json.dumps({"name": "lines", "version": V[1]}).encode(), "lines", v)
    assert not retention.owns_dataset(b"not json", "lines", v)
    content = b'{"format": "marina-model"}'
    model = Version(hashlib.sha256(content).hexdigest(), "", T0, (), "")
    assert retention.owns_model(content, "lines", model)
    assert not retention.owns_model(content + b" ", "lines", model)


def test_parts_are_the_parquet_files_of_the_dataset_s_parts_folder() -> None:
    part = f"{FOLDER}/parts/{'d' * 64}.parquet"
    listing = [
        stored(part),
        stored(f"{FOLDER}/parts/notes.txt"),
        stored(f"{FOLDER}-2/parts/{'d' * 64}.parquet"),
    ]
    assert [p.uri for p in retention.parts_in(FOLDER, listing)] == [part]


def parts_manifest(*names: str, folder: str = "../parts") -> bytes:
    split = {"sha256": "0", "parts": [{"name": n, "rows": 1} for n in names]}
    return json.dumps({"name": "lines", "parts": {"folder": folder, "train": split, "test": split}}).encode()


def test_a_manifest_names_its_parts_and_the_first_format_none() -> None:
    v = version(V[0], 0)
    assert retention.parts_named(v, parts_manifest("a.parquet")) == {f"{FOLDER}/parts/a.parquet"}
    assert retention.parts_named(v, json.dumps({"name": "lines", "version": V[0]}).encode()) == set()
    assert retention.parts_named(v, json.dumps({"parts": {"folder": "../parts"}}).encode()) is None
    assert retention.parts_named(v, b"{") is None


def test_only_parts_no_version_names_and_written_before_the_current_version_go() -> None:
    used, unused, late = (
        stored(f"{FOLDER}/parts/{c * 64}.parquet", m) for c, m in (("a", 0), ("b", 0), ("c", 9))
    )
    named = [frozenset({used.uri})]
    before = T0 + timedelta(minutes=5)
    assert retention.unreferenced_parts([used, unused, late], named, before) == (unused.uri,)
    assert retention.unreferenced_parts([used, unused, late], [*named, None], before) == ()


def test_a_run_is_due_for_a_new_version_or_a_new_keep_last_only() -> None:
    assert retention.due(None, 1, V[0])
    previous = {"keepLast": 1, "kept": [V[0]], "deleted": []}
    assert not retention.due(previous, 1, V[0])
    assert retention.due(previous, 2, V[0])
    assert retention.due(previous, 1, V[1])


# --- the spec -----------------------------------------------------------------------------------------


def test_keep_last_is_parsed_and_checked() -> None:
    base = {"source": {"builtin": "diabetes"}}
    assert dataset_spec.parse(base).keep_last is None
    assert dataset_spec.parse({**base, "retention": {"keepLast": 3}}).keep_last == 3
    assert trainingjob_spec.parse({"dataset": {"name": "d"}, "retention": {"keepLast": 1}}).keep_last == 1
    for retention_spec, field in (
        ({"keepLast": 0}, "keepLast"),
        ({}, "keepLast"),
        ({"keepLast": "2"}, "keepLast"),
    ):
        with pytest.raises(InvalidSpec) as error:
            dataset_spec.parse({**base, "retention": retention_spec})
        assert error.value.field == f"spec.retention.{field}"


def test_retention_is_not_an_input_of_the_jobs() -> None:
    """Adding or changing spec.retention must not rerun a preparation or a training."""
    base = {"source": {"builtin": "diabetes"}}
    with_retention = {**base, "retention": {"keepLast": 2}}
    assert builders.short_hash(dataset_spec.parse(base)) == builders.short_hash(
        dataset_spec.parse(with_retention)
    )
    job = {"dataset": {"name": "d"}}
    assert builders.short_hash(trainingjob_spec.parse(job)) == builders.short_hash(
        trainingjob_spec.parse({**job, "retention": {"keepLast": 2}})
    )


# --- a run, against a real MinIO ----------------------------------------------------------------------

SETTINGS = Settings(s3_bucket="marina", probe_storage=False)


@pytest.fixture
def store(s3_env: Any) -> None:
    """The session's MinIO with an empty bucket `marina` (emptied with the functions under test)."""
    storage.write_bytes("s3://marina/.keep", b"")
    storage.delete_objects([o.uri for o in storage.list_objects("s3://marina/")] + ["s3://marina/.keep"])
    assert storage.list_objects("s3://marina/") == []


def prepared(version_id: str, name: str = "lines") -> str:
    folder = f"{FOLDER}/{version_id}"
    storage.write_bytes(f"{folder}/train.csv", b"x,y\n1,2\n")
    storage.write_bytes(f"{folder}/test.csv", b"x,y\n3,4\n")
    storage.write_bytes(f"{folder}/dataset.json", json.dumps({"name": name, "version": version_id}).encode())
    return folder


def dataset(kube: Any, keep_last: int | None, current: str) -> dict[str, Any]:
    spec: dict[str, Any] = {"source": {"builtin": "diabetes"}}
    if keep_last is not None:
        spec["retention"] = {"keepLast": keep_last}
    status = {"version": current, "uri": f"{FOLDER}/{current}"}
    return dict(kube.add_resource("Dataset", "lines", spec, status))


def ready(version_id: str) -> Outcome:
    return Outcome(State.READY, "Prepared", "ok", {"version": version_id, "uri": f"{FOLDER}/{version_id}"})


def manifest_exists(version_id: str) -> bool:
    return storage.exists(f"{FOLDER}/{version_id}/dataset.json")


def test_a_run_deletes_unreferenced_older_versions_and_records_it(kube: Any, store: None) -> None:
    for v in V[:4]:
        prepared(v)
    prepared(V[4], name="someone-else")  # in the folder but not this Dataset's: kept
    storage.write_bytes(f"{FOLDER}/notes.txt", b"a user's file")
    kube.add_resource("TrainingJob", "t", {"dataset": {"name": "lines"}}, {"datasetVersion": V[0]})
    kube.add_resource("Dataset", "reader", {"source": {"csv": {"uri": f"{FOLDER}/{V[1]}/train.csv"}}})
    body = dataset(kube, 1, V[3])

    retention.follow(kube, SETTINGS, body, ready(V[3]), datasets.RETENTION)

    assert [v for v in V if manifest_exists(v)] == [V[0], V[1], V[3], V[4]]
    assert not storage.exists(f"{FOLDER}/{V[2]}/train.csv")
    assert storage.exists(f"{FOLDER}/notes.txt")
    status = kube.current("Dataset", "lines")["status"]["retention"]
    assert status["deleted"] == [V[2]] and status["kept"][0] == V[3] and status["keepLast"] == 1
    assert set(status["kept"]) == {V[0], V[1], V[3], V[4]}
    assert [(e[1], e[2]) for e in kube.events] == [("Normal", "RetentionApplied")]
    assert V[2] in kube.events[0][3]

    retention.follow(kube, SETTINGS, kube.current("Dataset", "lines"), ready(V[3]), datasets.RETENTION)
    assert len(kube.events) == 1  # not due again for the same version


def test_a_stale_body_does_not_run_again_over_a_recorded_run(kube: Any, store: None) -> None:
    for v in V[:3]:
        prepared(v)
    stale = dataset(kube, 1, V[2])  # read before the run below recorded status.retention
    retention.follow(kube, SETTINGS, stale, ready(V[2]), datasets.RETENTION)
    recorded = kube.current("Dataset", "lines")["status"]["retention"]
    assert sorted(recorded["deleted"]) == sorted(V[:2])

    retention.follow(kube, SETTINGS, stale, ready(V[2]), datasets.RETENTION)

    assert kube.current("Dataset", "lines")["status"]["retention"] == recorded
    assert len(kube.events) == 1


def test_without_retention_nothing_is_deleted(kube: Any, store: None) -> None:
    for v in V[:2]:
        prepared(v)
    body = dataset(kube, None, V[1])
    retention.follow(kube, SETTINGS, body, ready(V[1]), datasets.RETENTION)
    assert manifest_exists(V[0]) and manifest_exists(V[1]) and not kube.events


def test_not_ready_runs_nothing(kube: Any, store: None) -> None:
    for v in V[:2]:
        prepared(v)
    body = dataset(kube, 1, V[1])
    retention.follow(kube, SETTINGS, body, Outcome(State.PROGRESSING, "Preparing", "..."), datasets.RETENTION)
    assert manifest_exists(V[0])


def test_parts_only_the_deleted_version_named_go_unless_a_preparation_runs(kube: Any, store: None) -> None:
    shared, old_only = (f"{FOLDER}/parts/{c * 64}.parquet" for c in "ab")
    for part in (shared, old_only):
        storage.write_bytes(part, b"PAR1")
    for v, names in ((V[0], (shared, old_only)), (V[1], (shared,))):
        manifest = json.loads(parts_manifest(*(n.rsplit("/", 1)[1] for n in names)))
        storage.write_bytes(f"{FOLDER}/{v}/dataset.json", json.dumps({**manifest, "version": v}).encode())
    kube.add(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": "p",
                "namespace": "default",
                "labels": {"marina.dev/dataset": "lines", "app.kubernetes.io/component": "prepare"},
            },
            "status": {"phase": "Running"},
        }
    )
    body = dataset(kube, 1, V[1])
    retention.follow(kube, SETTINGS, body, ready(V[1]), datasets.RETENTION)
    assert not manifest_exists(V[0]) and storage.exists(old_only)  # a preparation may be writing parts

    kube.set_status("v1", "Pod", "p", {"phase": "Succeeded"})
    kube.set_status("marina.dev/v1alpha1", "Dataset", "lines", {"retention": {}})
    retention.follow(kube, SETTINGS, kube.current("Dataset", "lines"), ready(V[1]), datasets.RETENTION)
    assert storage.exists(shared) and not storage.exists(old_only)
    assert "1 data parts" in kube.events[-1][3]


def test_unreachable_storage_is_a_warning_and_ready_stays(
    kube: Any, store: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = dataset(kube, 1, V[1])
    kube.set_status(
        "marina.dev/v1alpha1", "Dataset", "lines", {"conditions": [{"type": "Ready", "status": "True"}]}
    )
    monkeypatch.setenv(storage.ENDPOINT_ENV, "http://127.0.0.1:1")
    retention.follow(kube, SETTINGS, body, ready(V[1]), datasets.RETENTION)
    assert [(e[1], e[2]) for e in kube.events] == [("Warning", "RetentionFailed")]
    status = kube.current("Dataset", "lines")["status"]
    assert "retention" not in status and status["conditions"][0]["status"] == "True"


def test_models_whose_content_does_not_match_their_name_are_kept(kube: Any, store: None) -> None:
    folder = "s3://marina/models/default/lines"
    shas = []
    for content in (b'{"m": 1}', b'{"m": 2}', b'{"m": 3}'):
        sha = hashlib.sha256(content).hexdigest()
        storage.write_bytes(f"{folder}/model-{sha}.json", content)
        shas.append(sha)
    forged = "c" * 64
    storage.write_bytes(f"{folder}/model-{forged}.json", b"not what the name says")
    deployed = f"{folder}/model-{shas[0]}.json"
    kube.add_resource("ModelDeployment", "web", {"model": {"uri": deployed, "sha256": shas[0]}})
    body = dict(
        kube.add_resource("TrainingJob", "lines", {"dataset": {"name": "d"}, "retention": {"keepLast": 1}})
    )
    outcome = Outcome(
        State.READY, "Trained", "ok", {"model": {"uri": f"{folder}/model-{shas[2]}.json", "sha256": shas[2]}}
    )

    retention.follow(kube, SETTINGS, body, outcome, trainingjobs.RETENTION)

    assert storage.exists(deployed) and storage.exists(f"{folder}/model-{shas[2]}.json")
    assert storage.exists(f"{folder}/model-{forged}.json")
    assert not storage.exists(f"{folder}/model-{shas[1]}.json")
    assert kube.current("TrainingJob", "lines")["status"]["retention"]["deleted"] == [shas[1]]


def test_the_dataset_reconciler_applies_retention_once_ready(
    kube: Any, settings: Settings, store: None
) -> None:
    prepared(V[0])
    prepared(V[1])
    kube.add_resource("Dataset", "lines", {"source": {"builtin": "diabetes"}, "retention": {"keepLast": 1}})
    datasets.reconcile(kube, settings, kube.current("Dataset", "lines"))
    (job,) = kube.jobs()
    summary = {"version": V[1], "uri": f"{FOLDER}/{V[1]}", "rows": 2, "columns": ["x", "y"], "format": 1}
    kube.finish_job(job, json.dumps(summary))
    outcome = datasets.reconcile(kube, settings, kube.current("Dataset", "lines"))
    assert outcome.state is State.READY
    assert not manifest_exists(V[0]) and manifest_exists(V[1])
    assert kube.current("Dataset", "lines")["status"]["retention"]["deleted"] == [V[0]]
