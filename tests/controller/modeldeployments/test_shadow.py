"""The shadow phase before a canary, through the reconciler on the fake API: the challenger runs where
no user request reaches it, the stable pods mirror to it, and their comparison decides: on into the
canary's steps, or aborted (ShadowDisagreed) before any user saw it."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from test_canary import NEW, OLD, Cluster

from marina.contract import API_VERSION, MODEL_DEPLOYMENT
from marina.controller.kube.settings import Settings
from marina.controller.modeldeployments import canary, shadowing
from marina.controller.modeldeployments import spec as modeldeployment_spec
from marina.controller.modeldeployments.handlers import in_canary
from marina.controller.shared.conditions import State
from marina.controller.shared.fields import InvalidSpec
from marina.serving.shadow import Comparison

SHADOW = {"minRequests": 50, "durationSeconds": 30, "maxDifference": 0.1, "alpha": 0.01}
SPEC = {
    "strategy": "Canary",
    "steps": [{"weight": 50, "pauseSeconds": 10}],
    "analysis": {"minRequests": 10},
    "shadow": SHADOW,
}


class ShadowCluster(Cluster):
    """The canary's cluster, plus what each stable pod's shadow comparison says."""

    def __init__(self, kube: Any, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
        super().__init__(kube, settings, monkeypatch)
        self.comparisons: list[tuple[str, Comparison]] = []  # (challenger version, the pod's comparison)
        monkeypatch.setattr(canary, "read_comparisons", lambda kube, owner: self.read())

    def mirror(self, version: str, champion: np.ndarray, challenger: np.ndarray) -> None:
        """One stable pod that compared these rows, one request each (the server's own counters)."""
        comparison = Comparison()
        for mine, theirs in zip(champion, challenger, strict=True):
            comparison.add(np.array([mine]), np.array([theirs]))
        self.comparisons.append((version, comparison))

    def read(self) -> list[shadowing.PodComparison]:
        found = []
        for version, comparison in self.comparisons:
            document = {"challenger": version, "mirrored": comparison.rows, **comparison.document()}
            found.append(shadowing.PodComparison.parse(document))
        return found

    def args(self, name: str) -> list[str]:
        body = self.kube.get("apps/v1", "Deployment", "default", name)
        args: list[str] = body["spec"]["template"]["spec"]["containers"][0]["args"]
        return args

    def exists(self, kind: str, name: str) -> bool:
        api = "apps/v1" if kind == "Deployment" else "v1"
        return self.kube.get(api, kind, "default", name) is not None


@pytest.fixture
def cluster(kube: Any, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> ShadowCluster:
    """Serving model OLD on 2 replicas, with a shadow phase before the canary."""
    cluster = ShadowCluster(kube, settings, monkeypatch)
    cluster.train(OLD)
    kube.add_resource(
        "ModelDeployment", "diabetes", {"model": {"trainingJob": "ridge"}, "replicas": 2, "rollout": SPEC}
    )
    cluster.reconcile()
    cluster.settle("diabetes")
    assert cluster.reconcile().state is State.READY
    return cluster


def start_shadow(cluster: ShadowCluster) -> None:
    """NEW runs as the challenger, the stable pods mirror to it, the duration starts."""
    cluster.train(NEW)
    outcome = cluster.reconcile()
    assert (outcome.state, outcome.reason) == (State.PROGRESSING, "Shadowing")
    assert "waiting for the challenger's pods" in outcome.message
    assert not cluster.exists("Deployment", "diabetes-canary")
    assert cluster.served_by("diabetes-shadow") == NEW
    assert "--shadow-url" not in cluster.args("diabetes")  # not before the challenger can answer
    rollout = cluster.status()["rollout"]
    assert (rollout["phase"], rollout["weights"]) == ("Shadowing", "100/0")
    cluster.settle("diabetes-shadow")
    outcome = cluster.reconcile()
    assert "waiting for the stable pods to mirror" in outcome.message
    args = cluster.args("diabetes")
    flags = dict(
        zip(args[args.index("--shadow-url") :: 2], args[args.index("--shadow-url") + 1 :: 2], strict=False)
    )
    address = cluster.kube.get("v1", "Service", "default", "diabetes-shadow")["spec"]["clusterIP"]
    # By address: a Service's DNS answer outlives it (CoreDNS caches it for 30 s).
    assert flags == {
        "--shadow-url": f"http://{address}:80",
        "--shadow-percent": "100",
        "--shadow-challenger": NEW[:12],
        "--shadow-concurrency": "4",
    }
    assert cluster.served_by("diabetes") == OLD  # the stable keeps its model, it only mirrors
    cluster.settle("diabetes")
    outcome = cluster.reconcile()
    assert outcome.reason == "Shadowing" and "judged in 30 s" in outcome.message
    assert cluster.status()["rollout"]["stepStartedAt"] == "2026-01-01T00:00:00Z"


def test_the_challenger_gets_no_user_request(cluster: ShadowCluster) -> None:
    start_shadow(cluster)
    service = cluster.kube.get("v1", "Service", "default", "diabetes")["spec"]["selector"]
    budget_or_reads = {"marina.dev/modeldeployment": "diabetes"}  # the operator's readings of serving pods
    challenger = cluster.kube.get("apps/v1", "Deployment", "default", "diabetes-shadow")
    labels = challenger["spec"]["template"]["metadata"]["labels"]
    assert not all(labels.get(k) == v for k, v in service.items())  # the Service never sends it a request
    assert not all(labels.get(k) == v for k, v in budget_or_reads.items())
    assert "--log-prefix" not in cluster.args("diabetes-shadow") and "--track" not in cluster.args(
        "diabetes-shadow"
    )
    own = cluster.kube.get("v1", "Service", "default", "diabetes-shadow")["spec"]["selector"]
    assert own == {"marina.dev/shadow-of": "diabetes", "marina.dev/model-version": NEW[:12]}
    assert all(labels[k] == v for k, v in own.items())  # only the copies reach it, through its own Service
    assert challenger["spec"]["replicas"] == 2  # 100 % of the stable's load: as many pods


def test_an_agreeing_challenger_passes_into_the_canary(cluster: ShadowCluster) -> None:
    start_shadow(cluster)
    rng = np.random.default_rng(5)
    champion = rng.normal(100.0, 10.0, 80)
    challenger = champion + rng.normal(0.0, 0.2, 80)  # a retrained model: close
    cluster.mirror(NEW[:12], champion[:40], challenger[:40])
    cluster.mirror(NEW[:12], champion[40:], challenger[40:])
    cluster.mirror("0123456789ab", champion, champion + 50.0)  # a pod of another challenger: left out
    assert cluster.reconcile(seconds=29).reason == "Shadowing"  # the duration is not over: nothing judged
    outcome = cluster.reconcile(seconds=1)
    assert (outcome.state, outcome.reason) == (State.PROGRESSING, "Canary")
    assert [e[1:3] for e in cluster.kube.events[-2:]] == [("Normal", "ShadowAgreed"), ("Normal", "Canary")]
    assert not cluster.exists("Deployment", "diabetes-shadow") and not cluster.exists(
        "Service", "diabetes-shadow"
    )
    assert cluster.served_by("diabetes-canary") == NEW
    assert "--shadow-url" not in cluster.args("diabetes")  # the stable stops mirroring
    rollout = cluster.status()["rollout"]
    assert (rollout["phase"], rollout["step"], rollout["weights"]) == ("Progressing", 1, "67/33")
    shadow = rollout["shadow"]
    difference = np.abs(challenger - champion)
    assert (shadow["verdict"], shadow["requests"], shadow["rows"], shadow["failed"]) == ("Agreed", 80, 80, 0)
    assert shadow["meanDifference"] == pytest.approx(difference.mean() / champion.std(), abs=1e-6)
    assert shadow["maxDifference"] == pytest.approx(difference.max() / champion.std(), abs=1e-6)
    mean = difference.mean() / champion.std()  # the delta method: the mean's and the sd's errors
    relative = (difference.std(ddof=1) / math.sqrt(80) / difference.mean()) ** 2 + 1 / 160
    assert shadow["standardError"] == pytest.approx(mean * math.sqrt(relative), abs=1e-6)
    assert shadow["championStd"] == pytest.approx(champion.std(), abs=1e-6)
    # The canary's pause waits for its pods and for the stable's to stop mirroring.
    cluster.settle("diabetes-canary")
    assert cluster.reconcile().message.endswith("and for the stable's pods to be updated")
    assert cluster.status()["rollout"].get("stepStartedAt") is None
    cluster.settle("diabetes")
    cluster.reconcile()
    assert cluster.status()["rollout"].get("stepStartedAt") is not None


def test_a_disagreeing_challenger_is_aborted_before_any_user_sees_it(cluster: ShadowCluster) -> None:
    start_shadow(cluster)
    rng = np.random.default_rng(6)
    champion = rng.normal(100.0, 10.0, 60)
    cluster.mirror(NEW[:12], champion, champion + 3.0)  # 0.3 sd off on every row
    outcome = cluster.reconcile(seconds=30)
    assert (outcome.state, outcome.reason) == (State.DEGRADED, "ShadowDisagreed")
    assert cluster.kube.events[-1][1:3] == ("Warning", "ShadowDisagreed")
    assert "exceeds maxDifference 0.1" in cluster.kube.events[-1][3]
    assert not cluster.exists("Deployment", "diabetes-shadow") and not cluster.exists(
        "Service", "diabetes-shadow"
    )
    assert not cluster.exists("Deployment", "diabetes-canary")  # never a user request: no canary ever ran
    status = cluster.status()
    assert status["failedModel"]["sha256"] == NEW and status["model"]["sha256"] == OLD
    assert (status["rollout"]["phase"], status["rollout"]["weights"]) == ("RolledBack", "100/0")
    assert status["rollout"]["shadow"]["verdict"] == "Disagreed"
    assert status["rollout"]["shadow"]["meanDifference"] == pytest.approx(3.0 / champion.std(), abs=1e-6)
    cluster.reconcile()  # the next pass: the stable stops mirroring and keeps serving OLD
    assert "--shadow-url" not in cluster.args("diabetes") and cluster.served_by("diabetes") == OLD
    assert cluster.status()["failedModel"]["sha256"] == NEW  # not tried again


def test_the_shadow_waits_for_enough_copies(cluster: ShadowCluster) -> None:
    start_shadow(cluster)
    champion = np.linspace(90.0, 110.0, 20)
    cluster.mirror(NEW[:12], champion, champion + 30.0)  # far off, but too few copies to judge
    outcome = cluster.reconcile(seconds=60)
    assert outcome.reason == "Shadowing" and "20 copies compared" in outcome.message
    shadow = cluster.status()["rollout"]["shadow"]
    assert (shadow["verdict"], shadow["requests"]) == ("Waiting", 20)


def test_a_challenger_that_cannot_answer_the_copies_is_aborted(cluster: ShadowCluster) -> None:
    start_shadow(cluster)
    comparison = Comparison()
    for _ in range(60):
        comparison.count_outcome("rejected")  # e.g. 400: it needs an input the clients do not send
    cluster.comparisons.append((NEW[:12], comparison))
    outcome = cluster.reconcile(seconds=30)
    assert outcome.reason == "ShadowDisagreed" and "no usable answer to 60 of 60 copies" in outcome.message


def test_the_decision_rule_is_a_one_sided_test_at_alpha() -> None:
    """At the boundary (true mean |difference| = maxDifference champion sds) the abort rate is at most
    about alpha; an identical challenger is never aborted; one twice as far is."""
    rule = modeldeployment_spec.Shadow(min_requests=400, duration_seconds=0, max_difference=0.1, alpha=0.05)
    rng = np.random.default_rng(11)

    def aborted(mean_difference: float, n: int = 400) -> bool:
        champion = rng.normal(50.0, 4.0, n)
        # |N(0, sigma)| has mean sigma * sqrt(2 / pi): this sigma makes the mean |difference| the one asked
        challenger = champion + rng.normal(0.0, 4.0 * mean_difference / math.sqrt(2 / math.pi), n)
        d = np.abs(challenger - champion)
        reading = shadowing.PodComparison(
            "x", n, 0, n, 0, 0, n, float(d.sum()), float(d @ d), float(d.max()), n, float(champion.mean()),
            float(((champion - champion.mean()) ** 2).sum()),
        )  # fmt: skip
        return shadowing.judge(reading, rule, 0.01, 0.0).verdict == shadowing.DISAGREED

    assert not any(aborted(0.0) for _ in range(100))
    at_boundary = sum(aborted(0.1) for _ in range(2000)) / 2000
    assert 0.02 < at_boundary < 0.05 + 3 * math.sqrt(0.05 * 0.95 / 2000), at_boundary
    assert sum(aborted(0.2) for _ in range(200)) >= 195


def test_the_spec_takes_its_shadow_defaults_and_bounds_from_the_contract() -> None:
    parsed = modeldeployment_spec.parse(
        {
            "model": {"uri": "s3://marina/m.json", "sha256": "a" * 64},
            "rollout": {"strategy": "Canary", "shadow": {}},
        }
    )
    shadow = parsed.rollout.shadow
    assert shadow is not None
    for key, value in (
        ("percent", shadow.percent),
        ("minRequests", shadow.min_requests),
        ("durationSeconds", shadow.duration_seconds),
        ("maxDifference", shadow.max_difference),
        ("alpha", shadow.alpha),
        ("maxConcurrency", shadow.max_concurrency),
    ):
        assert MODEL_DEPLOYMENT.default(f"spec.rollout.shadow.{key}") == value
    assert (
        modeldeployment_spec.parse(
            {"model": {"uri": "s3://marina/m.json", "sha256": "a" * 64}}
        ).rollout.shadow
        is None
    )
    with pytest.raises(InvalidSpec, match=r"spec.rollout.shadow: .*needs strategy Canary"):
        modeldeployment_spec.parse(
            {"model": {"uri": "s3://marina/m.json", "sha256": "a" * 64}, "rollout": {"shadow": {}}}
        )
    with pytest.raises(InvalidSpec, match=r"spec.rollout.shadow.percent"):
        modeldeployment_spec.parse(
            {
                "model": {"uri": "s3://marina/m.json", "sha256": "a" * 64},
                "rollout": {"strategy": "Canary", "shadow": {"percent": 0}},
            }
        )


def test_the_canary_loop_ticks_through_a_shadow_phase() -> None:
    """The background loop's index follows a shadow phase too (its duration ends within a tick)."""
    assert in_canary("default", "diabetes", {"rollout": {"phase": "Shadowing"}}) == {"default": "diabetes"}
    assert in_canary("default", "diabetes", {"rollout": {"phase": "RolledBack"}}) == {}


def test_dropping_the_shadow_from_the_spec_goes_on_to_the_canary(cluster: ShadowCluster) -> None:
    start_shadow(cluster)
    body = cluster.kube.current("ModelDeployment", "diabetes")
    rollout = {key: value for key, value in body["spec"]["rollout"].items() if key != "shadow"}
    cluster.kube.objects[(API_VERSION, "ModelDeployment", "default", "diabetes")]["spec"]["rollout"] = rollout
    outcome = cluster.reconcile()
    assert outcome.reason == "Canary" and cluster.served_by("diabetes-canary") == NEW
    assert not cluster.exists("Deployment", "diabetes-shadow") and not cluster.exists(
        "Service", "diabetes-shadow"
    )
    assert "--shadow-url" not in cluster.args("diabetes")


def test_a_new_model_right_after_an_abort_gets_a_shadow_of_its_own(cluster: ShadowCluster) -> None:
    """An abort deletes the challenger's Deployment and Service; the next model's shadow phase writes them
    again for itself, and its stable pods mirror to it (not to the aborted one)."""
    start_shadow(cluster)
    args = cluster.args("diabetes")
    aborted_url = args[args.index("--shadow-url") + 1]
    champion = np.linspace(90.0, 110.0, 60)
    cluster.mirror(NEW[:12], champion, champion + 30.0)
    assert cluster.reconcile(seconds=30).reason == "ShadowDisagreed"
    newer = "c" * 64
    cluster.comparisons.clear()
    cluster.train(newer)
    outcome = cluster.reconcile()
    assert outcome.reason == "Shadowing", outcome.message
    assert cluster.served_by("diabetes-shadow") == newer
    service = cluster.kube.get("v1", "Service", "default", "diabetes-shadow")["spec"]
    assert service["selector"]["marina.dev/model-version"] == newer[:12]
    cluster.settle("diabetes-shadow")
    cluster.reconcile()
    args = cluster.args("diabetes")
    assert args[args.index("--shadow-challenger") + 1] == newer[:12]
    # The new Service's address, not the aborted one's (its name's DNS answer may still be the old one).
    assert args[args.index("--shadow-url") + 1] == f"http://{service['clusterIP']}:80" != aborted_url
    cluster.settle("diabetes")
    assert cluster.reconcile().reason == "Shadowing"
    assert cluster.exists("Service", "diabetes-shadow") and cluster.exists("Deployment", "diabetes-shadow")
