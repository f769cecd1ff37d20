"""The canary state machine and step analysis (controller/modeldeployments/rollout.py), on counters the
server's own `Traffic` wrote, so the document the operator parses is the one the pods send."""

from __future__ import annotations

import math

import numpy as np
import pytest

from marina.controller.modeldeployments import rollout
from marina.controller.modeldeployments.spec import Analysis, CanaryStep
from marina.controller.shared.builders import ModelReference
from marina.serving.traffic import LATENCY_BOUNDS, Traffic

STABLE = ModelReference("s3://marina/models/default/ridge/model-a.json", "a" * 64)
CANARY = ModelReference("s3://marina/models/default/ridge/model-b.json", "b" * 64)
STEPS = (CanaryStep(25, 10), CanaryStep(100, 10))
# Sums of n squared deviations lose about n·ε of their size to rounding (ε = 2.2e-16); 1e-9 relative
# covers n up to 10^6 with room, and the tests below use at most 2,000 values.
RELATIVE = 1e-9


def reading(
    pod: str,
    model: ModelReference,
    predictions: np.ndarray,
    errors: int = 0,
    seconds: float = 0.002,
) -> rollout.PodTraffic:
    """A pod's counters after answering one request per prediction (`errors` of them with a 500)."""
    counters = Traffic()
    for index, value in enumerate(predictions):
        status = 500 if index < errors else 200
        counters.observe("v2_infer", status, seconds)
        if status == 200:
            counters.predicted(np.array([value]))
    return rollout.PodTraffic.parse(counters.document("diabetes", model.version), pod)


def test_weights_are_replica_ratios_with_at_least_one_canary_pod() -> None:
    assert [rollout.canary_replicas(w, 2) for w in (1, 20, 50, 100)] == [1, 1, 1, 2]
    assert rollout.canary_replicas(50, 4) == 2
    assert rollout.weights(2, 1) == "67/33"
    assert rollout.weights(3, 3) == "50/50"


def test_pods_merge_to_the_moments_of_all_their_predictions() -> None:
    rng = np.random.default_rng(7)
    first, second = rng.normal(150, 50, 700), rng.normal(5000, 10, 1300)
    merged = rollout.summarise(
        [reading("p1", STABLE, first), reading("p2", STABLE, second), reading("p3", STABLE, np.array([]))]
    )
    everything = np.concatenate([first, second])
    assert merged.predictions == len(everything)
    assert merged.mean == pytest.approx(everything.mean(), rel=RELATIVE)
    assert merged.std == pytest.approx(everything.std(), rel=RELATIVE)


def test_a_step_counts_only_what_each_pod_answered_since_its_baseline() -> None:
    before = reading("p1", STABLE, np.full(100, 10.0), errors=5)
    after = reading("p1", STABLE, np.concatenate([np.full(100, 10.0), np.full(50, 20.0)]), errors=5)
    step = after.since(before)
    assert (step.requests, step.errors, step.predictions) == (50, 0, 50)
    assert rollout.summarise([step]).mean == pytest.approx(20.0, rel=RELATIVE)
    restarted = reading("p1", STABLE, np.full(10, 30.0))
    assert restarted.since(before) == restarted  # counters that went back started over: all of them count


def test_p99_is_the_bound_of_the_bucket_holding_it() -> None:
    fast = [reading(f"p{i}", CANARY, np.ones(1), seconds=0.002) for i in range(99)]
    slow = reading("slow", CANARY, np.ones(1), seconds=100.0)
    assert rollout.summarise([*fast, slow]).p99 == 0.0025
    assert rollout.summarise([*fast[:98], slow, slow]).p99 == math.inf
    assert LATENCY_BOUNDS[1] == 0.0025


def analysed(canary: list[float], stable: list[float], errors: int = 0) -> rollout.Verdict:
    return rollout.judge(
        rollout.summarise([reading("c", CANARY, np.array(canary), errors=errors)]),
        rollout.summarise([reading("s", STABLE, np.array(stable))]),
        Analysis(max_error_rate=0.05, max_prediction_shift=1.0, min_requests=20),
    )


def test_judge_waits_for_traffic_then_measures_each_metric() -> None:
    stable = [100.0 + 10 * math.sin(i) for i in range(200)]
    assert analysed([100.0] * 19, stable).passed is None
    passed = analysed([101.0 + 10 * math.sin(i) for i in range(40)], stable)
    assert passed.passed and passed.failure is None
    shifted = analysed([100.0 * x for x in stable[:40]], stable)
    assert shifted.failure is not None and shifted.failure.metric == "predictionShift"
    assert shifted.failure.value > 500  # (10,000 - 100) / about 7: the 100-times challenger
    assert "predictionShift" in shifted.message and "exceeds maxPredictionShift 1" in shifted.message
    failing = analysed([100.0] * 40, stable, errors=3)  # 3 of 40 = 7.5% > 5%
    assert failing.failure is not None and failing.failure.metric == "errorRate"
    assert failing.failure.value == pytest.approx(3 / 40)
    status = shifted.to_status(1)
    assert status["failed"]["metric"] == "predictionShift" and status["canaryRequests"] == 40


def test_a_stable_that_never_varied_makes_any_shift_infinite_and_keeps_it_out_of_json() -> None:
    verdict = analysed([2.0] * 30, [1.0] * 30)
    assert verdict.failure is not None and verdict.failure.value == math.inf
    assert "predictionShift" not in verdict.to_status(1)
    assert "value" not in verdict.to_status(1)["failed"]


def test_the_state_survives_the_status_round_trip() -> None:
    state = rollout.start(CANARY, STEPS, 2, "2026-01-01T00:00:00Z")
    state = rollout.began(state, "2026-01-01T00:00:05Z", [reading("p1", STABLE, np.ones(3))])
    assert rollout.State.of(state.to_status()) == state
    assert state.to_status()["step"] == 1 and state.to_status()["weights"] == "67/33"
    assert rollout.State.of({"phase": "Progressing"}) is None


def test_steps_advance_then_promote_and_a_failure_rolls_back() -> None:
    state = rollout.began(rollout.start(CANARY, STEPS, 2, "t0"), "2026-01-01T00:00:05Z", [])
    good = analysed([100.0 + math.cos(i) for i in range(40)], [100.0 + math.cos(i) for i in range(40)])
    second = rollout.after(state, good, STEPS, 2)
    assert (second.phase, second.step, second.step_started, second.weights) == (
        rollout.PROGRESSING,
        1,
        None,
        "50/50",
    )
    assert second.analysis is not None and second.analysis["step"] == 1
    last = rollout.after(rollout.began(second, "2026-01-01T00:00:20Z", []), good, STEPS, 2)
    assert last.phase == rollout.PROMOTING
    waiting = rollout.after(state, analysed([1.0], [1.0, 2.0]), STEPS, 2)
    assert (waiting.phase, waiting.step, waiting.step_started) == (rollout.PROGRESSING, 0, state.step_started)
    bad = analysed([1e4 + math.cos(i) for i in range(40)], [100.0 + math.cos(i) for i in range(40)])
    assert rollout.after(state, bad, STEPS, 2).phase == rollout.ROLLED_BACK
    assert rollout.rollback_reason(state, bad).startswith("canary step 1/2: predictionShift")
