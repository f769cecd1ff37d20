"""Two operator replicas, one leading through kopf's peering: TrainingJobs applied at once, the leader
pod deleted once half of them have their Job. The other replica takes over (the time is printed),
every TrainingJob gets exactly one Job (counted from a watch, so a Job made twice and deleted would
show) and all become Ready. And a leader that stops without a goodbye (a crash, a frozen node: here a
made-up peer of top priority that never writes again) holds both replicas back only for its lifetime."""

from __future__ import annotations

import collections
import datetime
import json
import os
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from marina.controller.kube import leadership

# Runs alone (serial): it deletes the leading operator pod, and pauses both replicas for a made-up leader;
# every other test's operator would stop or change hands under it.
pytestmark = pytest.mark.serial

TRAINING_JOBS = int(os.environ.get("MARINA_E2E_LEADER_JOBS", "50"))
SYSTEM = "marina-system"
OPERATOR = "deployment/marina-operator"
LIFETIME = 20  # seconds a silent peer still counts (the operator's PEERING_LIFETIME)


class JobWatch:
    """Every Job created in a namespace while it runs, by uid, with the TrainingJob that owns it."""

    def __init__(self, kube: Any, namespace: str) -> None:
        from kubernetes import client, watch

        self.owners: dict[str, str] = {}  # Job uid -> owning TrainingJob
        self._watch = watch.Watch()
        self._stream = self._watch.stream(
            client.BatchV1Api(kube).list_namespaced_job, namespace=namespace, timeout_seconds=1800
        )
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._stopped = False

    def _run(self) -> None:
        try:
            for event in self._stream:
                job = event["object"]
                for owner in job.metadata.owner_references or []:
                    if owner.kind == "TrainingJob" and owner.controller:
                        self.owners[job.metadata.uid] = owner.name
        except Exception:
            if not self._stopped:
                raise  # a watch lost mid-test would undercount: the test fails on the missing Jobs

    def jobs_per_training_job(self) -> collections.Counter[str]:
        return collections.Counter(dict(self.owners).values())

    def __enter__(self) -> JobWatch:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stopped = True
        self._watch.stop()


def leader(cluster: Any) -> str | None:
    """The replica kopf runs, from the peering object (kopf's rule, `leadership.leader`)."""
    body = json.loads(cluster.kubectl("get", "clusterkopfpeering", "marina", "-o", "json"))
    return leadership.leader(body.get("status") or {}, datetime.datetime.now(datetime.UTC))


def live_operator_pods(cluster: Any) -> set[str]:
    pods = json.loads(
        cluster.kubectl(
            "-n", SYSTEM, "get", "pods", "-l", "app.kubernetes.io/name=marina-operator", "-o", "json"
        )
    )["items"]
    return {p["metadata"]["name"] for p in pods if not p["metadata"].get("deletionTimestamp")}


def ready_count(marina: Any) -> int:
    items = json.loads(marina.kubectl("get", "trainingjobs", "-o", "json"))["items"]
    return sum(
        any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in (i.get("status") or {}).get("conditions", [])
        )
        for i in items
    )


@pytest.fixture
def two_replicas(cluster: Any, operator: None) -> Iterator[None]:
    """The operator at its two replicas, one leading; rolled out again afterwards (the deleted pod's
    replacement ready) so later tests find both."""
    cluster.kubectl("-n", SYSTEM, "rollout", "status", OPERATOR, "--timeout=180s", timeout=200)
    try:
        yield
    finally:
        cluster.kubectl("-n", SYSTEM, "rollout", "status", OPERATOR, "--timeout=180s", timeout=200)


def test_the_follower_takes_over_and_every_training_job_gets_one_job(
    marina: Any, kube: Any, two_replicas: None
) -> None:
    cluster = marina.cluster
    dataset = marina.sample("Dataset")
    marina.apply(dataset)
    marina.wait_ready("dataset", dataset["metadata"]["name"])
    first = marina.wait_for("a leader among two replicas", lambda: leader(cluster), timeout=60)
    assert len(live_operator_pods(cluster)) == 2 and first in live_operator_pods(cluster)

    names = [f"ridge-{i:02d}" for i in range(TRAINING_JOBS)]
    spec = marina.sample("TrainingJob")["spec"]
    with JobWatch(kube, marina.namespace) as jobs:
        started = time.monotonic()
        marina.apply(
            *[
                {
                    "apiVersion": "marina.dev/v1alpha1",
                    "kind": "TrainingJob",
                    "metadata": {"name": n},
                    "spec": spec,
                }
                for n in names
            ]
        )
        marina.wait_for("half of the Jobs", lambda: len(jobs.jobs_per_training_job()) >= TRAINING_JOBS // 2)
        cluster.kubectl("-n", SYSTEM, "delete", "pod", first, "--wait=false")
        deleted = time.monotonic()
        second = marina.wait_for(
            "the other replica to lead",
            lambda: (now := leader(cluster)) not in (None, first) and now,
            timeout=90,
        )
        takeover = time.monotonic() - deleted
        assert second in live_operator_pods(cluster)  # (checked now: other tests may roll the operator out)
        jobs_at_takeover = len(jobs.jobs_per_training_job())
        ready_at_takeover = ready_count(marina)
        waited = marina.try_kubectl("wait", "--for=condition=Ready", "trainingjob", "--all", "--timeout=600s")
        ready = time.monotonic() - started
        per_training_job = jobs.jobs_per_training_job()

    print(
        f"{TRAINING_JOBS} TrainingJobs: leader {first} deleted with {jobs_at_takeover} Jobs made; "
        f"{second} led {takeover:.1f}s later ({ready_at_takeover} Ready then); "
        f"all Ready {ready:.1f}s after applying"
    )
    assert waited.returncode == 0, waited.stderr
    assert ready_at_takeover < TRAINING_JOBS  # the rest were reported by the new leader
    assert set(per_training_job) == set(names)
    assert {n: c for n, c in per_training_job.items() if c != 1} == {}
    for name in names:
        assert marina.condition("trainingjob", name)["status"] == "True"


def paused_for(marina: Any, pod: str, peer: str) -> bool:
    """The leader `pod` has paused in favour of `peer`, or is gone (the follower was paused already, and
    a replica started since starts paused until it has read the peering object)."""
    if pod not in live_operator_pods(marina.cluster):
        return True
    logs = marina.try_kubectl("-n", SYSTEM, "logs", pod, "--since=5m").stdout
    return f"Pausing operations in favour of [<Peer {peer}:" in logs


def test_a_leader_gone_silent_is_replaced_after_its_lifetime(marina: Any, two_replicas: None) -> None:
    cluster = marina.cluster
    dataset = marina.sample("Dataset")
    marina.apply(dataset)
    marina.wait_ready("dataset", dataset["metadata"]["name"])
    first = marina.wait_for("a leader among two replicas", lambda: leader(cluster), timeout=60)
    ghost = f"ghost-{uuid.uuid4().hex[:6]}"
    seen = datetime.datetime.now(datetime.UTC).isoformat()
    entry = {"priority": 2**31, "lifetime": LIFETIME, "lastseen": seen}  # above any replica's
    cluster.kubectl(
        "patch", "clusterkopfpeering", "marina", "--type=merge", "-p", json.dumps({"status": {ghost: entry}})
    )
    injected = time.monotonic()
    marina.wait_for(f"the leader to pause for {ghost}", lambda: paused_for(marina, first, ghost))
    training_job = {
        "apiVersion": "marina.dev/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {"name": "after-a-silent-leader"},
        "spec": marina.sample("TrainingJob")["spec"],
    }
    marina.apply(training_job)
    marina.wait_for(
        "a replica to take the TrainingJob up",
        lambda: marina.status("trainingjob", "after-a-silent-leader").get("observedGeneration") == 1,
        timeout=90,
    )
    handled = time.monotonic() - injected
    print(f"a leader gone silent: a TrainingJob was taken up {handled:.1f}s after its last keep-alive")
    assert LIFETIME - 2 <= handled <= LIFETIME + 30
    marina.wait_for(
        f"{ghost} cleaned from the peering object",
        lambda: (
            ghost
            not in json.loads(cluster.kubectl("get", "clusterkopfpeering", "marina", "-o", "json")).get(
                "status", {}
            )
        ),
    )
    marina.wait_ready("trainingjob", "after-a-silent-leader")
