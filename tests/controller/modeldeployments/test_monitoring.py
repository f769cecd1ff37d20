"""Drift monitoring: cutting the pods' windows, choosing the window, scoring, deciding, and the status,
condition and events a check writes. The pods' answers are made by the server's own counting code
(`WindowedHistograms`) in the shape its distribution endpoint sends."""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import numpy as np
import pytest

from marina.controller.modeldeployments import collector, drift, monitor, monitoring
from marina.controller.modeldeployments.collector import CollectError, Pod
from marina.controller.modeldeployments.monitoring import Level, PodCounts, Shift, Span
from marina.controller.modeldeployments.spec import Monitoring
from marina.controller.shared.conditions import Outcome, State, status_patch, with_condition
from marina.data.distribution import Reference
from marina.serving.histograms import WindowedHistograms

NAMES = ("age", "bmi", "bp")
RNG_SEED = 7
TRAIN = np.random.default_rng(RNG_SEED).normal(size=(4000, 3))
REFERENCE = Reference.of(TRAIN, TRAIN.sum(axis=1))
SETTINGS = Monitoring(interval_seconds=10, min_rows=1000, psi_threshold=0.2)


class Clock:
    def __init__(self, now: float = 6000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def rows(count: int, seed: int, shift: dict[int, float] | None = None) -> np.ndarray:
    """`count` rows drawn from the training rows (with replacement), feature j moved by shift[j]."""
    drawn = TRAIN[np.random.default_rng(seed).integers(0, len(TRAIN), count)].copy()
    for column, amount in (shift or {}).items():
        drawn[:, column] += amount * TRAIN[:, column].std()
    return drawn


def send(histograms: WindowedHistograms, features: np.ndarray) -> None:
    histograms.add(features, features.sum(axis=1))


def document(histograms: WindowedHistograms, version: str = "v1") -> dict[str, Any]:
    """What GET /v2/models/<m>/distribution answers (serving/app.py)."""
    windows = histograms.windows()
    return {
        "name": "m",
        "version": version,
        "reference": histograms.reference.to_dict(NAMES),
        "windowSeconds": histograms.window_seconds,
        "windows": [w.to_dict(NAMES, complete=w is not windows[-1]) for w in windows],
    }


def reading(histograms: WindowedHistograms, at: float, pod: str = "p1", version: str = "v1") -> PodCounts:
    return monitoring.parse_counts(document(histograms, version), pod, at)


def span(start: float, end: float, count: int) -> Span:
    return Span(start, end, count, ((count, 0),), (count,))


# -- reading the pods -------------------------------------------------------------------------------


def test_a_pods_answer_is_read_with_its_reference_and_windows() -> None:
    clock = Clock()
    pod = WindowedHistograms(REFERENCE, clock=clock)
    send(pod, rows(300, 1))
    read = reading(pod, clock.now)
    assert read.feature_names == NAMES and read.reference == REFERENCE and read.version == "v1"
    (window,) = read.windows
    assert window.rows == 300 and all(sum(counts) == 300 for counts in window.features)


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda d: d["windows"][0]["features"].update(bmi=[1, 2]), "windows[0].features.bmi"),
        (lambda d: d["windows"][0].update(prediction=[-1] * 10), "windows[0].prediction"),
        (lambda d: d["windows"][0].update(rows="many"), "windows[0]"),
        (lambda d: d.update(windows={}), "windows"),
        (lambda d: d["reference"].update(format="other"), "reference.format"),
    ],
)
def test_a_malformed_answer_is_refused_naming_the_part(change: Any, words: str) -> None:
    pod = WindowedHistograms(REFERENCE, clock=Clock())
    send(pod, rows(10, 1))
    answer = copy.deepcopy(document(pod))
    change(answer)
    with pytest.raises(ValueError, match=words.replace("[", r"\[").replace("]", r"\]")):
        monitoring.parse_counts(answer, "p1", 0.0)


# -- the window -------------------------------------------------------------------------------------


def read_twice(
    first_rows: int, second_rows: int, first_at: float = 6000.0, second_at: float = 6010.0
) -> tuple[PodCounts, PodCounts]:
    """One pod read at `first_at` and again at `second_at`, with rows counted before each reading."""
    clock = Clock(first_at)
    pod = WindowedHistograms(REFERENCE, clock=clock)
    send(pod, rows(first_rows, 1))
    first = reading(pod, clock.now)
    clock.now = second_at
    send(pod, rows(second_rows, 2))
    return first, reading(pod, clock.now)


def test_a_window_read_twice_is_cut_where_it_was_read_before() -> None:
    first, second = read_twice(400, 250)
    cut = monitoring.history(second, monitoring.history(first, None)).spans
    assert [(s.start, s.end, s.rows) for s in cut] == [(6000.0, 6000.0, 400), (6000.0, 6010.0, 250)]
    assert all(sum(counts) == 250 for counts in cut[1].features)


def test_without_a_comparable_earlier_reading_a_window_is_one_span() -> None:
    first, second = read_twice(400, 100)
    known = monitoring.history(first, None)
    other_model = dataclasses.replace(second, version="v2")
    assert [s.rows for s in monitoring.history(other_model, known).spans] == [500]
    restarted = WindowedHistograms(REFERENCE, clock=Clock(second.at))  # counts afresh: fewer rows than before
    send(restarted, rows(50, 3))
    assert [s.rows for s in monitoring.history(reading(restarted, second.at), known).spans] == [50]


def test_windows_completed_since_the_last_check_keep_their_end() -> None:
    first, second = read_twice(100, 30, first_at=6050.0, second_at=6065.0)  # then the 6060-6120 window
    cut = monitoring.history(second, monitoring.history(first, None)).spans
    assert [(s.start, s.end, s.rows) for s in cut] == [(6000.0, 6050.0, 100), (6060.0, 6065.0, 30)]


def test_cuts_of_earlier_checks_stay_and_old_windows_lose_theirs() -> None:
    clock = Clock(6000.0)
    pod = WindowedHistograms(REFERENCE, clock=clock)
    known = None
    for second, count in ((6005.0, 10), (6015.0, 20), (6025.0, 30)):
        clock.now = second
        send(pod, rows(count, int(second)))
        known = monitoring.history(reading(pod, clock.now), known)
    assert [(s.start, s.end, s.rows) for s in known.spans] == [
        (6000.0, 6005.0, 10),
        (6005.0, 6015.0, 20),
        (6015.0, 6025.0, 30),
    ]
    clock.now = 6060.0 + monitoring.FINE_SECONDS
    later = monitoring.history(reading(pod, clock.now), known)
    assert [(s.start, s.end, s.rows) for s in later.spans] == [(6000.0, 6060.0, 60)]


def test_select_takes_the_newest_spans_until_min_rows_and_a_whole_cut_of_every_pod() -> None:
    older, newer = span(0, 10, 700), span(10, 20, 600)
    other_pod_same_cut = span(10, 20, 5)
    assert monitoring.select([older, newer], 500) == [newer]
    assert monitoring.select([older, newer], 1000) == [newer, older]
    assert set(monitoring.select([older, newer, other_pod_same_cut], 500)) == {newer, other_pod_same_cut}
    assert monitoring.select([older], 5000) == [older]


def test_merge_sums_the_counts_over_the_spans() -> None:
    merged = monitoring.merge([span(0, 10, 3), span(10, 20, 4)])
    assert merged == Span(0, 20, 7, ((7, 0),), (7,))
    assert monitoring.merge([]) is None


def test_the_version_judged_is_the_one_served_when_a_pod_runs_it() -> None:
    def counts(version: str) -> PodCounts:
        return PodCounts("p", version, NAMES, REFERENCE, (), 0.0)

    readings = [counts("old"), counts("new"), counts("new")]
    assert monitoring.serving_version(readings, "old") == "old"
    assert monitoring.serving_version(readings, "gone") == "new"
    assert monitoring.serving_version([], "old") is None


# -- the decision -----------------------------------------------------------------------------------


def test_a_feature_drifts_only_when_its_psi_is_large_and_significant() -> None:
    limit = monitoring.SIGNIFICANCE / 3
    assert monitoring.drifts(Shift("x", 0.5, limit / 2, 0.1), 0.2, 3)
    assert not monitoring.drifts(Shift("x", 0.5, limit * 2, 0.1), 0.2, 3)  # a small, noisy window
    assert not monitoring.drifts(Shift("x", 0.05, 1e-30, 0.1), 0.2, 3)  # significant but negligible


def judge_once(features: np.ndarray, min_rows: int = 1000) -> monitoring.Assessment:
    clock = Clock()
    pod = WindowedHistograms(REFERENCE, clock=clock)
    send(pod, features)
    settings = Monitoring(10, min_rows, 0.2)
    judged = monitoring.judge([monitoring.history(reading(pod, clock.now), None)], "v1", settings)
    assert judged is not None
    return judged


def test_rows_from_the_training_distribution_are_stable() -> None:
    judged = judge_once(rows(20_000, 11))
    assert judged.level is Level.STABLE and not judged.drifted and judged.window is not None
    assert judged.window.rows == 20_000 and judged.score < 0.01
    assert monitoring.condition(judged)[:2] == ("False", "NoDrift")


def test_one_feature_moved_by_one_standard_deviation_drifts_and_is_named() -> None:
    judged = judge_once(rows(5000, 12, shift={1: 1.0}))
    assert judged.level is Level.DRIFTED and [f.name for f in judged.drifted] == ["bmi"]
    assert judged.features[0].name == "bmi" and judged.features[0].psi > 0.5
    assert judged.prediction is not None and judged.prediction.psi > 0.05
    status, reason, message = monitoring.condition(judged)
    assert (status, reason) == ("True", "DriftDetected") and "bmi" in message and "age" not in message


def test_too_few_rows_leave_drift_unknown() -> None:
    judged = judge_once(rows(999, 13, shift={1: 3.0}))
    assert judged.level is Level.INSUFFICIENT_DATA and not judged.features
    assert monitoring.condition(judged)[:2] == ("Unknown", "InsufficientData")
    assert monitoring.to_status(judged, "t")["rows"] == 999


def test_no_false_alarm_over_many_in_distribution_windows_at_min_rows() -> None:
    levels = [judge_once(rows(1000, seed)).level for seed in range(100, 300)]
    assert Level.DRIFTED not in levels and levels.count(Level.STABLE) == len(levels)


def test_a_small_min_rows_does_not_false_alarm_where_psi_alone_would() -> None:
    judged = [judge_once(rows(100, seed), min_rows=100) for seed in range(300, 500)]
    psi_alone = sum(any(f.psi >= 0.2 for f in j.features) for j in judged)
    assert psi_alone > 0  # noise on 100 rows crosses the threshold ...
    assert not any(j.level is Level.DRIFTED for j in judged)  # ... and the p-value tells it apart


def test_checks_every_interval_see_a_shift_at_once_not_diluted_by_the_window() -> None:
    """20k rows from the training data, a check, then 5k shifted rows in the same 60 s window: the
    next check judges only the new rows."""
    clock = Clock(6000.0)
    pod = WindowedHistograms(REFERENCE, clock=clock)
    send(pod, rows(20_000, 21))
    known = monitoring.history(reading(pod, clock.now), None)
    before = monitoring.judge([known], "v1", SETTINGS)
    assert before is not None and before.level is Level.STABLE
    clock.now = 6010.0
    send(pod, rows(5000, 22, shift={2: 1.0}))
    known = monitoring.history(reading(pod, clock.now), known)
    after = monitoring.judge([known], "v1", SETTINGS)
    assert after is not None and after.window is not None
    assert after.window.rows == 5000 and [f.name for f in after.drifted] == ["bp"]
    for second in (6020.0, 6030.0, 6070.0):  # no traffic: the same rows are judged again, the alarm holds
        clock.now = second
        known = monitoring.history(reading(pod, clock.now), known)
        again = monitoring.judge([known], "v1", SETTINGS)
        assert again is not None and again.level is Level.DRIFTED and again.window is not None
        assert again.window.rows == 5000


def test_the_counts_of_several_pods_add_up() -> None:
    clock = Clock()
    pods = [WindowedHistograms(REFERENCE, clock=clock) for _ in range(2)]
    send(pods[0], rows(600, 31, shift={0: 1.0}))
    send(pods[1], rows(600, 32, shift={0: 1.0}))
    histories = [monitoring.history(reading(p, clock.now, pod=f"p{i}"), None) for i, p in enumerate(pods)]
    judged = monitoring.judge(histories, "v1", SETTINGS)
    assert judged is not None and judged.pods == 2 and judged.window is not None
    assert judged.window.rows == 1200 and [f.name for f in judged.drifted] == ["age"]


def test_status_names_the_window_and_the_top_features() -> None:
    judged = judge_once(rows(5000, 41, shift={0: 1.0}))
    status = monitoring.to_status(judged, "2026-01-01T00:01:40Z")
    assert status["level"] == "Drifted" and status["rows"] == 5000 and status["modelVersion"] == "v1"
    assert status["windowStart"] == "1970-01-01T01:40:00Z" and status["windowEnd"] == "1970-01-01T01:40:00Z"
    top = status["topFeatures"]
    assert top[0]["name"] == "age" and top[0]["drifted"] and not top[1]["drifted"]
    assert status["score"] == top[0]["psi"] and set(status["prediction"]) == {"psi", "pValue", "jsDistance"}


def test_a_check_is_due_after_the_interval_less_half_a_tick() -> None:
    assert monitoring.due(None, 60, 0.0)
    assert not monitoring.due(100.0, 60, 157.0)
    assert monitoring.due(100.0, 60, 100.0 + 60 - monitoring.TICK_SECONDS / 2)


# -- collecting -------------------------------------------------------------------------------------


def pod_body(
    name: str, ready: bool = True, ip: str | None = "10.0.0.1", going: bool = False
) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": name,
        "namespace": "default",
        "labels": {"marina.dev/modeldeployment": "m"},
    }
    if going:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    status: dict[str, Any] = {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}
    if ip:
        status["podIP"] = ip
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "status": status}


def test_only_ready_pods_with_an_ip_that_stay_are_asked(kube: Any) -> None:
    for body in (
        pod_body("a"),
        pod_body("b", ready=False),
        pod_body("c", ip=None),
        pod_body("d", going=True),
    ):
        kube.add(body)
    (pod,) = collector.ready_pods(kube, "default", "marina.dev/modeldeployment=m")
    assert pod.name == "a" and collector.distribution_url(pod, "m") == (
        "http://10.0.0.1:8080/v2/models/m/distribution"
    )


def test_collect_keeps_the_answers_and_says_what_the_others_said() -> None:
    pod_counts = WindowedHistograms(REFERENCE, clock=Clock())
    send(pod_counts, rows(10, 1))
    answers: dict[str, Any] = {
        "10.0.0.1": document(pod_counts),
        "10.0.0.2": CollectError("HTTP 404 model 'm' has no reference distribution", 404),
        "10.0.0.3": {"reference": {}},
    }

    def fetch(url: str) -> Any:
        answer = answers[url.split("/")[2].split(":")[0]]
        if isinstance(answer, Exception):
            raise answer
        return answer

    pods = [Pod(f"p{i}", f"uid{i}", f"10.0.0.{i}") for i in (1, 2, 3)]
    collected = collector.collect(pods, "m", 5.0, fetch)
    assert [r.pod for r in collected.readings] == ["uid1"] and collected.readings[0].at == 5.0
    assert collected.no_reference and len(collected.problems) == 2
    assert "pod p3: unexpected distribution" in collected.problems[1]


# -- status, condition and events -------------------------------------------------------------------


def deployment_with_pod(kube: Any, monitoring_spec: dict[str, Any] | None) -> None:
    spec: dict[str, Any] = {"model": {"trainingJob": "t"}}
    if monitoring_spec is not None:
        spec["monitoring"] = monitoring_spec
    kube.add_resource(
        "ModelDeployment", "m", spec, {"model": {"uri": "s3://b/k", "sha256": "a" * 64, "version": "v1"}}
    )
    kube.add(pod_body("m-1"))


def test_monitor_writes_status_condition_and_an_event_only_when_the_condition_changes(kube: Any) -> None:
    memory: dict[str, Any] = {}
    clock = Clock(6000.0)
    deployment_with_pod(kube, {"intervalSeconds": 10, "minRows": 1000})
    served = WindowedHistograms(REFERENCE, clock=clock)

    def check() -> dict[str, Any]:
        memory.pop(drift.LAST_CHECK, None)  # due now (the interval is not under test here)
        monitor.tick(kube, "default", "m", memory, lambda url: document(served), clock)
        return kube.current("ModelDeployment", "m")["status"]

    send(served, rows(300, 51))
    status = check()
    assert status["monitoring"]["level"] == "InsufficientData"
    assert [(e[1], e[2]) for e in kube.events] == []  # absent counts as Unknown: no change, no event
    send(served, rows(20_000, 52))
    clock.now = 6010.0
    status = check()
    drifted = next(c for c in status["conditions"] if c["type"] == "Drifted")
    assert drifted["status"] == "False" and status["monitoring"]["rows"] == 20_000
    clock.now = 6020.0
    check()
    assert [(e[1], e[2]) for e in kube.events] == [("Normal", "NoDrift")]
    send(served, rows(3000, 53, shift={1: 1.0}))
    clock.now = 6030.0
    status = check()
    drifted = next(c for c in status["conditions"] if c["type"] == "Drifted")
    assert drifted["status"] == "True" and "bmi" in drifted["message"]
    assert status["monitoring"]["rows"] == 3000 and status["monitoring"]["topFeatures"][0]["name"] == "bmi"
    assert [(e[1], e[2]) for e in kube.events] == [("Normal", "NoDrift"), ("Warning", "DriftDetected")]
    assert not any(c["type"] == "Ready" for c in status["conditions"])  # the reconciler's, untouched


def test_monitor_waits_for_the_interval(kube: Any) -> None:
    memory: dict[str, Any] = {}
    deployment_with_pod(kube, {"intervalSeconds": 60})
    asked: list[str] = []

    def fetch(url: str) -> Any:
        asked.append(url)
        raise CollectError("refused")

    monitor.tick(kube, "default", "m", memory, fetch)
    monitor.tick(kube, "default", "m", memory, fetch)
    assert len(asked) == 1
    status = kube.current("ModelDeployment", "m")["status"]
    assert status["monitoring"]["level"] == "Unavailable" and "refused" in status["monitoring"]["message"]
    assert [(e[1], e[2]) for e in kube.events] == []  # Unknown as before


def test_a_model_without_reference_says_so(kube: Any) -> None:
    deployment_with_pod(kube, {})

    def fetch(url: str) -> Any:
        raise CollectError("HTTP 404 no reference", 404)

    monitor.tick(kube, "default", "m", {}, fetch)
    assert "retrain it" in kube.current("ModelDeployment", "m")["status"]["monitoring"]["message"]


def test_switching_monitoring_off_removes_its_status_and_condition(kube: Any) -> None:
    deployment_with_pod(kube, None)
    body = kube.current("ModelDeployment", "m")
    kube.patch_status(
        body,
        {
            "monitoring": {"level": "Drifted"},
            "conditions": [{"type": "Ready", "status": "True"}, {"type": "Drifted", "status": "True"}],
        },
    )
    monitor.tick(kube, "default", "m", {}, lambda url: pytest.fail("no pod is asked"))
    status = kube.current("ModelDeployment", "m")["status"]
    assert "monitoring" not in status and [c["type"] for c in status["conditions"]] == ["Ready"]


def test_the_reconcilers_status_keeps_the_drifted_condition() -> None:
    drifted = with_condition([], "Drifted", ("True", "DriftDetected", "bmi"), 1, lambda: "t0")
    patch = status_patch(Outcome(State.READY, "Available", "serving"), {"conditions": drifted}, 1)
    assert [c["type"] for c in patch["conditions"]] == ["Ready", "Reconciling", "Stalled", "Drifted"]


def test_with_condition_keeps_the_transition_time_while_the_status_holds() -> None:
    first = with_condition([], "Drifted", ("False", "NoDrift", "a"), 1, lambda: "t0")
    held = with_condition(first, "Drifted", ("False", "NoDrift", "b"), 2, lambda: "t1")
    changed = with_condition(held, "Drifted", ("True", "DriftDetected", "c"), 2, lambda: "t2")
    assert [c["lastTransitionTime"] for c in (*held, *changed)] == ["t0", "t2"]
    assert held[0]["message"] == "b" and held[0]["observedGeneration"] == 2
