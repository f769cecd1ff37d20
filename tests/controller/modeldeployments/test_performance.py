"""Live accuracy (spec.monitoring.performance): the join of logged answers with feedback, the rmse and mae
it gives, the Degraded decision around its threshold, reading the window from a real MinIO where the
parts are written by the serving pods' own writer (`serving.payloads.PayloadLog`), and the status,
condition, event and metrics a check writes."""

from __future__ import annotations

import io
import math
import time
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from marina import storage
from marina.controller.kube import metrics
from marina.controller.modeldeployments import degraded, drift, monitor, performance
from marina.controller.modeldeployments.performance import Labelled, Reference
from marina.controller.modeldeployments.spec import Performance
from marina.controller.shared.builders import ModelReference
from marina.data import served
from marina.model import artifact
from marina.model.artifact import ModelArtifact
from marina.serving.model import ServedModel
from marina.serving.payloads import Feedback, LogSettings, PayloadLog
from minio_server import MinioServer, free_port
from trained import splits

SERVING, OTHER = "a" * 64, "b" * 64
RELATIVE = 1e-9  # rmse and mae are a mean and a square root of float64: agree to rounding


def _time(seconds: list[float]) -> pa.Array:
    return pa.array((np.array(seconds) * 1e6).astype(np.int64), pa.timestamp("us", tz="UTC"))


def predictions(
    ids: list[str], rows: list[int], models: list[str], values: list[float], at: float = 1.0
) -> Any:
    return pa.table(
        {
            "id": pa.array(ids, pa.string()),
            "row": pa.array(rows, pa.int32()),
            "time": _time([at] * len(ids)),
            "model": pa.array(models, pa.string()),
            "prediction": pa.array(values, pa.float64()),
        }
    )


def feedback(ids: list[str], rows: list[int], targets: list[float], at: list[float] | None = None) -> Any:
    return pa.table(
        {
            "id": pa.array(ids, pa.string()),
            "row": pa.array(rows, pa.int32()),
            "time": _time(at or [2.0] * len(ids)),
            "target": pa.array(targets, pa.float64()),
        }
    )


# -- the join -----------------------------------------------------------------------------------------


def test_the_join_pairs_rows_of_multi_row_requests_and_counts_what_does_not_count() -> None:
    logged = predictions(
        ["r1", "r1", "r1", "r2", "r3"],
        [0, 1, 2, 0, 0],
        [SERVING, SERVING, SERVING, OTHER, SERVING],
        [10.0, 20.0, 30.0, 40.0, 50.0],
    )
    truth = feedback(
        ["r1", "r1", "r1", "r2", "ghost", "r3"],
        [2, 0, 1, 0, 0, 1],  # r3 row 1 was never answered
        [27.0, 11.0, 24.0, 0.0, 0.0, 0.0],
    )
    joined = performance.join(logged, truth, SERVING)
    assert sorted(joined.errors.tolist()) == [-4.0, -1.0, 3.0]  # 20-24, 10-11, 30-27: by (id, row)
    assert (joined.feedback_rows, joined.unmatched, joined.other_models) == (6, 2, 1)


def test_repeated_feedback_counts_once_with_its_latest_target() -> None:
    logged = predictions(["r1"], [0], [SERVING], [10.0])
    truth = feedback(["r1", "r1"], [0, 0], [12.0, 9.0], at=[5.0, 3.0])  # the later one says 12
    joined = performance.join(logged, truth, SERVING)
    assert joined.errors.tolist() == [-2.0] and joined.feedback_rows == 1


def test_rmse_and_mae_are_those_computed_by_hand() -> None:
    rng = np.random.default_rng(3)
    n = 5000
    values, targets = rng.normal(size=n) * 7, rng.normal(size=n) * 7
    ids = [f"q{i // 3}" for i in range(n)]
    rows = [i % 3 for i in range(n)]
    joined = performance.join(
        predictions(ids, rows, [SERVING] * n, values.tolist()), feedback(ids, rows, targets.tolist()), SERVING
    )
    residuals = values - targets
    assert joined.rows == n
    assert joined.rmse == pytest.approx(math.sqrt(np.mean(residuals**2)), rel=RELATIVE)
    assert joined.mae == pytest.approx(np.mean(np.abs(residuals)), rel=RELATIVE)


def test_no_feedback_joins_nothing() -> None:
    joined = performance.join(predictions(["r"], [0], [SERVING], [1.0]), feedback([], [], []), SERVING)
    assert (joined.rows, joined.feedback_rows) == (0, 0) and math.isnan(joined.rmse)


# -- the decision -------------------------------------------------------------------------------------

SETTINGS = Performance(min_rows=200, margin=0.1, false_alarm_rate=0.01)


def labelled(errors: np.ndarray) -> Labelled:
    return Labelled(errors, len(errors), 0, 0)


def scaled_normal(n: int, rmse: float, seed: int = 1) -> np.ndarray:
    """n errors whose rmse is exactly `rmse` (a normal sample rescaled)."""
    drawn = np.random.default_rng(seed).normal(size=n)
    return drawn * rmse / math.sqrt(np.mean(drawn**2))


def test_too_few_labelled_rows_leave_degraded_unknown_saying_how_many() -> None:
    verdict = performance.decide(labelled(scaled_normal(199, 5.0)), Reference(1.0), SETTINGS)
    assert verdict.condition[:2] == ("Unknown", "NotEnoughFeedback")
    assert "199 labelled rows" in verdict.message and "200 needed" in verdict.message


def test_the_decision_turns_where_the_z_test_says() -> None:
    """With errors of known rmse, the verdict flips between just below and just above the rmse at which
    z equals the critical value: (1 + margin)·r0·sqrt(1 + z·c/sqrt(n)) for the reference's shape c
    (the sample's own spread is smaller here, so c decides)."""
    n, reference = 400, Reference(1.0, squared_cv=math.sqrt(2.0))
    critical = performance.threshold_z(SETTINGS.false_alarm_rate)
    boundary = 1.1 * math.sqrt(1 + critical * math.sqrt(2.0) / math.sqrt(n))
    constant = np.full(n, 1.0)  # |e| all equal: sample spread of e² is 0, the reference's applies
    below = performance.decide(labelled(constant * boundary * 0.999), reference, SETTINGS)
    above = performance.decide(labelled(constant * boundary * 1.001), reference, SETTINGS)
    assert below.condition[:2] == ("False", "WithinMargin")
    assert above.condition[:2] == ("True", "ErrorAboveMargin")
    assert f"over {n} labelled rows" in above.message and "test rmse 1 x 1.1 = 1.1" in above.message


def test_an_unchanged_model_is_not_degraded_and_a_much_worse_one_is() -> None:
    reference = Reference.of(1.0, np.abs(scaled_normal(8192, 1.0, seed=2)))
    same = performance.decide(labelled(scaled_normal(1000, 1.0, seed=4)), reference, SETTINGS)
    worse = performance.decide(labelled(scaled_normal(1000, 1.5, seed=5)), reference, SETTINGS)
    assert same.status == "False" and same.z_score is not None and same.z_score < 0
    assert worse.status == "True" and worse.rmse == pytest.approx(1.5, rel=1e-5)


def test_a_heavy_tailed_live_sample_uses_its_own_larger_spread() -> None:
    reference = Reference(1.0, squared_cv=math.sqrt(2.0))
    errors = np.concatenate([np.full(990, 0.5), np.full(10, 10.5)])  # rmse 1.14, all in ten rows
    z = performance.z_score(errors, reference, 0.1)
    squared = errors**2
    by_hand = (squared.mean() - 1.21) / (squared.std(ddof=1) / math.sqrt(len(errors)))
    assert z == pytest.approx(by_hand, rel=RELATIVE)
    assert performance.decide(labelled(errors), reference, SETTINGS).status == "False"


def test_the_reference_shape_comes_from_the_held_out_residuals() -> None:
    residuals = np.array([1.0, 1.0, 3.0, 3.0])
    squared = residuals**2
    assert Reference.of(2.0, residuals).squared_cv == pytest.approx(squared.std(ddof=1) / squared.mean())
    assert Reference.of(2.0, None).squared_cv == pytest.approx(math.sqrt(2.0))


def test_the_test_splits_own_error_widens_the_standard_error() -> None:
    errors = scaled_normal(5000, 1.2)
    exact, estimated = Reference(1.0), Reference(1.0, test_rows=2000)
    squared, bound = errors**2, 1.21
    spread = max(squared.std(ddof=1), bound * math.sqrt(2.0))
    by_hand = (squared.mean() - bound) / math.sqrt(spread**2 / 5000 + (bound * math.sqrt(2.0)) ** 2 / 2000)
    assert performance.z_score(errors, estimated, 0.1) == pytest.approx(by_hand, rel=RELATIVE)
    assert performance.z_score(errors, estimated, 0.1) < performance.z_score(errors, exact, 0.1)


def test_a_trained_models_reference_is_its_test_rmse_and_calibration(
    diabetes_model: ModelArtifact, diabetes_model_v1: ModelArtifact
) -> None:
    found = degraded.reference_of(diabetes_model)
    record = diabetes_model.answers_record()
    assert isinstance(found, Reference) and record is not None
    assert found.rmse == diabetes_model.metrics["rmse"] and found.test_rows == record.calibration.split_rows
    squared = record.calibration.residuals**2
    assert found.squared_cv == pytest.approx(squared.std(ddof=1) / squared.mean(), rel=RELATIVE)
    assert "no test rmse" in str(degraded.reference_of(diabetes_model_v1))


# -- reading the window from real MinIO ---------------------------------------------------------------

DAY1, DAY2 = datetime(2026, 3, 9, tzinfo=UTC).timestamp(), datetime(2026, 3, 10, tzinfo=UTC).timestamp()
NOW = DAY2 + 12 * 3600


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def served_model(coefficients: list[float]) -> ServedModel:
    model = ModelArtifact(
        coefficients=coefficients, intercept=0.0, feature_names=["a", "b"], metrics={"rmse": 1.0}
    )
    return ServedModel.from_artifact(model, "md", "memory")


def log_for(prefix: str, model: ServedModel, pod: str, clock: Clock) -> PayloadLog:
    return PayloadLog(
        LogSettings(prefix, flush_rows=1_000_000, flush_seconds=3600.0, pod=pod), model, clock=clock
    )


def answer(log: PayloadLog, clock: Clock, at: float, ids: list[str], features: np.ndarray) -> np.ndarray:
    """Each id a request of two rows, answered by `log`'s model at `at`, written as one part."""
    clock.now = at
    answers = []
    for index, request_id in enumerate(ids):
        rows = features[2 * index : 2 * index + 2]
        predicted = log.model.predict(rows)
        log.add(request_id, rows, predicted)
        answers.append(predicted)
    log.flush()
    return np.concatenate(answers)


def report(log: PayloadLog, at: float, ids: list[str], targets: np.ndarray) -> None:
    """The truth of both rows of each request, received at `at`, written as one part."""
    log.add_feedback(
        Feedback([i for i in ids for _ in (0, 1)], np.tile(np.array([0, 1], np.int32), len(ids)), targets, at)
    )
    log.flush()


def written_logs(prefix: str) -> tuple[dict[str, float], str]:
    """Two days of parts as the serving pods write them. Window: the 6 hours before NOW (DAY2 12:00),
    predictions read from 24 hours before its start (DAY1 06:00). Returns the by-hand expectation."""
    clock = Clock(DAY1)
    model, other = served_model([1.0, 2.0]), served_model([3.0, -1.0])
    stable, canary = log_for(prefix, model, "p1", clock), log_for(prefix, other, "p2", clock)
    rng = np.random.default_rng(11)
    features = rng.normal(size=(400, 2))
    ids = [f"req-{i}" for i in range(200)]
    early = answer(stable, clock, DAY1 + 23 * 3600, ids[:100], features[:200])  # day 1, 23:00
    late = answer(stable, clock, DAY2 + 8 * 3600, ids[100:150], features[200:300])  # day 2, 08:00
    answer(canary, clock, DAY2 + 9 * 3600, ids[150:], features[300:])  # the other model's answers
    answer(stable, clock, DAY1 - 3 * 86400, ["ancient"], rng.normal(size=(2, 2)))  # beyond the delay
    truth = rng.normal(size=400) * 3
    report(stable, DAY1 + 23.5 * 3600, ids[:50], truth[:100])  # before the window: not counted
    report(stable, DAY2 + 10 * 3600, ids[50:150], truth[100:300])  # in it, for day 1 and day 2 answers
    report(
        stable,
        DAY2 + 11 * 3600,
        [*ids[150:], "ancient", "ghost"],
        np.concatenate([truth[300:], [0, 0, 0, 0]]),
    )
    # A part of a day outside every window is never even opened:
    storage.write_bytes(f"{prefix}feedback/date=2026-03-01/broken.parquet", b"not parquet")
    errors = np.concatenate([early[100:], late]) - truth[100:300]
    expected = {"rows": 200, "rmse": math.sqrt(np.mean(errors**2)), "mae": float(np.mean(np.abs(errors)))}
    return expected, model.sha256


def test_a_check_reads_only_the_window_and_gives_the_numbers_computed_by_hand(s3_env: MinioServer) -> None:
    prefix = "s3://marina-perf/logs/team/window/"
    expected, model = written_logs(prefix)
    window = served.Window.of(NOW, window_hours=6, label_delay_hours=24)
    assert served.days(window.predictions_from, window.end) == ["date=2026-03-10", "date=2026-03-09"]
    read = served.read(prefix, window, max_rows=1_000_000)
    joined = performance.join(read.predictions, read.feedback, model)
    assert joined.rows == expected["rows"]
    assert joined.rmse == pytest.approx(expected["rmse"], rel=RELATIVE)
    assert joined.mae == pytest.approx(expected["mae"], rel=RELATIVE)
    # feedback in the window: 200 rows of ours, 100 of the other model, "ancient" (2) and "ghost" (2)
    assert (joined.feedback_rows, joined.other_models, joined.unmatched) == (304, 100, 4)
    assert read.skipped_parts == 0 and read.rows_read == 304 + 200 + 100 + 100  # feedback, 3 prediction parts


def test_a_cap_on_rows_skips_the_oldest_parts_and_says_what_it_skipped(s3_env: MinioServer) -> None:
    prefix = "s3://marina-perf/logs/team/cap/"
    written_logs(prefix)
    window = served.Window.of(NOW, window_hours=6, label_delay_hours=24)
    read = served.read(prefix, window, max_rows=350)
    # feedback: 304 rows in two parts; predictions newest part first: the other model's (written last,
    # 100 rows) while fewer than 350 rows are read, then the stable pod's parts of both days are skipped.
    skipped = [
        o
        for o in storage.list_objects(f"{prefix}predictions/")
        if "-p1-" in o.uri and ("date=2026-03-10" in o.uri or "date=2026-03-09" in o.uri)
    ]
    assert read.rows_read == 304 + 100
    assert read.skipped_parts == 2 and read.skipped_bytes == sum(o.size for o in skipped)
    measured = degraded.evaluate(
        degraded.Wanted(Performance(window_hours=6, max_rows=350), ModelReference("s3://x/m", "c" * 64)),
        NOW,
        prefix,
        Reference(1.0),
    )
    assert measured.fields["skippedParts"] == 2 and "2 parts" in measured.assessment.message


def test_an_unreadable_part_in_the_window_is_skipped_and_named(s3_env: MinioServer) -> None:
    prefix = "s3://marina-perf/logs/team/unreadable/"
    expected, model = written_logs(prefix)
    bad = f"{prefix}feedback/date=2026-03-10/00000000T000000.000Z-hand-000001.parquet"
    storage.write_bytes(bad, b"not parquet")
    wanted = degraded.Wanted(Performance(window_hours=6, min_rows=100), ModelReference("s3://x/m", model))
    measured = degraded.evaluate(wanted, NOW, prefix, Reference(1.0))
    assert measured.fields["unreadableParts"] == 1 and bad in measured.assessment.message
    assert measured.fields["rows"] == expected["rows"]  # the readable parts still count


def test_truth_uploaded_as_files_counts_and_a_malformed_file_is_named_not_fatal(s3_env: MinioServer) -> None:
    """A team's CSV of id, row, target under raw/<namespace>/feedback/<name>/ joins as the endpoint's
    feedback does; a file that is not CSV or Parquet is skipped, counted and named in the message."""
    now = time.time()
    prefix, uploads = "s3://marina-perf/logs/team/uploaded/", "s3://marina-perf/raw/team/feedback/uploaded/"
    model, clock = served_model([1.0, 2.0]), Clock(now)
    ids = [f"u{i}" for i in range(100)]
    predicted = answer(log_for(prefix, model, "p1", clock), clock, now - 60, ids, np.ones((200, 2)))
    lines = [
        f"{i},{r},{float(p) + 1.0!r}"
        for (i, r), p in zip(((i, r) for i in ids for r in (0, 1)), predicted, strict=True)
    ]
    storage.write_bytes(f"{uploads}truth.csv", ("id,row,target\n" + "\n".join(lines)).encode())
    storage.write_bytes(f"{uploads}broken.parquet", b"not parquet")
    wanted = degraded.Wanted(
        Performance(window_hours=1, min_rows=100), ModelReference("s3://x/m", model.sha256)
    )
    measured = degraded.evaluate(wanted, now + 1, prefix, Reference(1.0), uploads)
    assert measured.fields["rows"] == 200, measured.assessment.message
    assert measured.fields["rmse"] == pytest.approx(1.0)
    assert measured.fields["unreadableParts"] == 1
    assert f"{uploads}broken.parquet: not a readable CSV or Parquet file" in measured.assessment.message


def test_storage_that_cannot_be_read_leaves_degraded_unknown_and_clears_the_last_reads_counts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(storage.ENDPOINT_ENV, f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv(storage.ACCESS_KEY_ENV, "a")
    monkeypatch.setenv(storage.SECRET_KEY_ENV, "b")
    wanted = degraded.Wanted(Performance(), ModelReference("s3://x/m", SERVING))
    measured = degraded.evaluate(wanted, NOW, "s3://marina-perf/logs/team/down/", Reference(1.0))
    assert measured.assessment.condition[:2] == ("Unknown", "Unavailable")
    assert "cannot read the payload logs" in measured.assessment.message
    assert measured.fields["skippedParts"] is None and measured.fields["rmse"] is None  # removed


def test_parts_as_read_have_the_servers_schema(s3_env: MinioServer) -> None:
    prefix = "s3://marina-perf/logs/team/schema/"
    written_logs(prefix)
    part = next(
        o
        for o in storage.list_objects(f"{prefix}feedback/")
        if o.uri.endswith(".parquet") and "03-10" in o.uri
    )
    names = pq.read_schema(io.BytesIO(storage.read_bytes(part.uri))).names
    assert set(served.FEEDBACK_COLUMNS) <= set(names)


# -- the check, its status, condition, event and metrics ----------------------------------------------


def deployment(kube: Any, performance_spec: dict[str, Any] | None = None) -> None:
    """A ModelDeployment serving SERVING with performance monitoring; its status writes feed the metrics
    as the real API client's do."""
    written = kube.patch_status

    def patch_status(body: Any, status: Any, **options: Any) -> Any:
        stored = written(body, status, **options)
        metrics.status_written(body, status)
        return stored

    kube.patch_status = patch_status
    monitoring: dict[str, Any] = {"intervalSeconds": 60}
    if performance_spec is not None:
        monitoring["performance"] = performance_spec
    kube.add_resource(
        "ModelDeployment",
        "m",
        {"model": {"trainingJob": "t"}, "logging": {"sampleRate": 1.0}, "monitoring": monitoring},
        {
            "model": {"uri": "s3://b/k", "sha256": SERVING, "version": SERVING[:12]},
            "conditions": [{"type": "Drifted", "status": "False", "reason": "NoDrift", "message": "m"}],
        },
    )


class Measurer:
    """Plays the storage read: each call gives the errors it is handed next."""

    def __init__(self) -> None:
        self.errors = np.empty(0)
        self.calls = 0

    def __call__(self, wanted: degraded.Wanted, now: float) -> degraded.Measured:
        self.calls += 1
        judged = performance.decide(labelled(self.errors), Reference(1.0), wanted.settings)
        fields = performance.to_status(judged, labelled(self.errors), Reference(1.0), None, {"checked": "t"})
        return degraded.Measured(wanted.model.sha256, judged, fields)


def test_a_degraded_model_sets_degraded_with_an_event_and_metrics_and_recovery_clears_it(kube: Any) -> None:
    deployment(kube, {"minRows": 200})
    memory: dict[str, Any] = {drift.LAST_CHECK: math.inf}  # no drift check: not under test
    measure = Measurer()

    def check(errors: np.ndarray) -> dict[str, Any]:
        measure.errors = errors
        memory.pop(degraded.LAST_CHECK, None)  # due now
        monitor.tick(kube, "default", "m", memory, lambda url: pytest.fail("no pod"), measure=measure)
        return kube.current("ModelDeployment", "m")["status"]  # type: ignore[no-any-return]

    check(np.empty(0))  # the first tick notes what the check needs; nothing is measured yet
    assert measure.calls == 0
    status = check(scaled_normal(500, 2.0))
    found = {c["type"]: c for c in status["conditions"]}
    assert found["Degraded"]["status"] == "True" and found["Degraded"]["reason"] == "ErrorAboveMargin"
    assert "live rmse 2 over 500" in found["Degraded"]["message"]
    assert found["Drifted"] == {"type": "Drifted", "status": "False", "reason": "NoDrift", "message": "m"}
    assert status["monitoring"]["performance"]["rows"] == 500
    assert status["monitoring"]["performance"]["rmse"] == pytest.approx(2.0, rel=1e-5)
    assert [(e[1], e[2]) for e in kube.events][-1] == ("Warning", "ErrorAboveMargin")
    assert metrics.LIVE_RMSE.labels("default", "m")._value.get() == pytest.approx(2.0, rel=1e-5)
    assert metrics.DEGRADED.labels("default", "m")._value.get() == 1
    events = len(kube.events)
    check(scaled_normal(500, 2.0, seed=9))
    assert len(kube.events) == events  # still True: no new event
    status = check(scaled_normal(500, 0.9))
    found = {c["type"]: c for c in status["conditions"]}
    assert found["Degraded"]["status"] == "False" and found["Drifted"]["status"] == "False"
    assert [(e[1], e[2]) for e in kube.events][-1] == ("Normal", "WithinMargin")
    assert metrics.DEGRADED.labels("default", "m")._value.get() == 0
    status = check(scaled_normal(10, 0.9))
    assert {c["type"]: c["status"] for c in status["conditions"]}["Degraded"] == "Unknown"
    assert [(e[1], e[2]) for e in kube.events][-1] == ("Normal", "NotEnoughFeedback")


def test_a_verdict_for_a_model_that_no_longer_serves_is_not_written(kube: Any) -> None:
    deployment(kube, {})
    memory: dict[str, Any] = {drift.LAST_CHECK: math.inf}  # no drift check: not under test
    monitor.tick(kube, "default", "m", memory, lambda url: pytest.fail("no pod"), measure=Measurer())
    body = kube.current("ModelDeployment", "m")
    kube.patch_status(body, {"model": {"uri": "s3://b/k2", "sha256": OTHER, "version": OTHER[:12]}})
    measure = Measurer()
    measure.errors = scaled_normal(500, 2.0)
    monitor.tick(kube, "default", "m", memory, lambda url: pytest.fail("no pod"), measure=measure)
    assert measure.calls == 1  # measured for the model noted before the rollout ...
    status = kube.current("ModelDeployment", "m")["status"]
    assert "Degraded" not in {c["type"] for c in status["conditions"]}  # ... and not written


def test_switching_performance_off_removes_its_status_condition_and_series(kube: Any) -> None:
    deployment(kube, {})
    memory: dict[str, Any] = {drift.LAST_CHECK: math.inf}  # no drift check: not under test
    measure = Measurer()
    measure.errors = scaled_normal(500, 2.0)
    for _ in range(2):
        monitor.tick(kube, "default", "m", memory, lambda url: pytest.fail("no pod"), measure=measure)
    assert metrics.DEGRADED.labels("default", "m")._value.get() == 1
    body = kube.current("ModelDeployment", "m")
    body["spec"]["monitoring"].pop("performance")
    kube.objects[kube.key(body)]["spec"] = body["spec"]
    monitor.tick(kube, "default", "m", memory, lambda url: pytest.fail("no pod"), measure=measure)
    status = kube.current("ModelDeployment", "m")["status"]
    assert "performance" not in (status.get("monitoring") or {})
    assert [c["type"] for c in status["conditions"]] == ["Drifted"]
    series = [s for f in metrics.DEGRADED.collect() for s in f.samples if s.labels["modeldeployment"] == "m"]
    assert series == []


# -- the whole check on real MinIO: the served artifact, the servers' parts, the status ------------------


def test_a_concept_shift_on_real_storage_sets_degraded_while_the_unchanged_model_is_within_margin(
    kube: Any, s3_env: MinioServer, diabetes_model: ModelArtifact, diabetes_data: str
) -> None:
    """The diabetes model served and its answers logged by the servers' writer; clients report the
    truth for its training rows (which it fits about as well as its test rows). Then the target's
    relation changes (the inputs do not): the same rows' truth moves by two test rmse per standard
    deviation of the first feature, and the check reads it from MinIO and says Degraded."""
    uri, sha256 = artifact.save(diabetes_model, "s3://marina-perf/models/team/")
    model = ServedModel.from_artifact(diabetes_model, "md", uri)
    assert model.sha256 == sha256
    data = splits(diabetes_data)
    rows, truth = data.x_train, data.y_train
    rmse = diabetes_model.metrics["rmse"]
    kube.add_resource(
        "ModelDeployment",
        "m",
        {
            "model": {"trainingJob": "t"},
            "logging": {"sampleRate": 1.0},
            "monitoring": {"performance": {"minRows": 100, "windowHours": 6}},
        },
        {"model": {"uri": uri, "sha256": sha256, "version": sha256[:12]}},
    )

    def judged_after(prefix: str, targets: np.ndarray) -> dict[str, Any]:
        clock = Clock(NOW - 3600)
        log = log_for(prefix, model, "p1", clock)
        ids = [f"r{i}" for i in range(len(rows))]
        for request_id, row in zip(ids, rows, strict=True):
            log.add(request_id, row[None, :], model.predict(row[None, :]))
        log.flush()
        log.add_feedback(Feedback(ids, np.zeros(len(ids), np.int32), targets, NOW - 1800))
        log.flush()
        memory: dict[str, Any] = {drift.LAST_CHECK: math.inf}
        measure = degraded.measurer(prefix, memory)
        for _ in range(2):  # the first tick notes what the check needs, the second measures
            monitor.tick(
                kube, "default", "m", memory, lambda url: pytest.fail("no pod"), lambda: NOW, measure
            )
        return kube.current("ModelDeployment", "m")["status"]  # type: ignore[no-any-return]

    status = judged_after("s3://marina-perf/logs/team/unchanged/", truth)
    live = status["monitoring"]["performance"]
    by_hand = math.sqrt(np.mean((model.predict(rows) - truth) ** 2))
    assert live["rows"] == len(rows) and live["rmse"] == pytest.approx(by_hand, rel=1e-5)
    assert live["referenceRmse"] == pytest.approx(rmse, rel=1e-5)
    assert {c["type"]: c["status"] for c in status["conditions"]}["Degraded"] == "False", live["message"]
    first = (rows[:, 0] - rows[:, 0].mean()) / rows[:, 0].std()
    status = judged_after("s3://marina-perf/logs/team/shifted/", truth + 2 * rmse * first)
    degraded_condition = next(c for c in status["conditions"] if c["type"] == "Degraded")
    assert degraded_condition["status"] == "True" and status["monitoring"]["performance"]["rmse"] > 2 * rmse
    assert kube.events[-1][1:3] == ("Warning", "ErrorAboveMargin")
