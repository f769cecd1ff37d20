"""A finished result outlives its pod: a training Job that succeeds while the operator is down, its pod
(and with it the termination message) deleted before the operator is back, still makes the TrainingJob
Ready from the result document the command stored in MinIO, from that same Job: no second Job, no
`ResultLost`.

The race is made deterministic: a ResourceQuota of 0 pods holds the Job's pod back until the operator
is scaled to 0, so the operator cannot read the termination message first."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from tests.e2e.test_e2e_operator_down import operator_scaled_to_zero

from marina import storage
from marina.contract import Success
from marina.controller.shared import termination
from marina.jobs import results

# Runs alone (serial): it scales the operator to 0, and no other test's resources would be reconciled
# meanwhile.
pytestmark = pytest.mark.serial


def test_a_finished_result_is_read_from_minio_when_its_pod_is_gone(
    marina: Any, cluster: Any, storage_env: None
) -> None:
    dataset = marina.sample("Dataset")
    marina.apply(dataset)
    marina.wait_ready("dataset", dataset["metadata"]["name"])
    marina.kubectl("create", "quota", "hold-pods", "--hard=pods=0")
    training = marina.sample("TrainingJob")
    name = training["metadata"]["name"]
    marina.apply(training)
    job_name = marina.wait_for(
        "the training Job", lambda: marina.status("trainingjob", name).get("jobName"), 120
    )
    job = marina.get("job", job_name)
    stored_at = termination.result_location(job)
    assert stored_at is not None and stored_at.startswith(f"s3://marina/models/{marina.namespace}/{name}/")
    with operator_scaled_to_zero(cluster):
        marina.kubectl("delete", "quota", "hold-pods")
        marina.kubectl("wait", "--for=condition=Complete", f"job/{job_name}", "--timeout=300s")
        stored = results.read_stored(stored_at)
        assert isinstance(stored, Success), stored  # the command stored its success
        marina.kubectl("delete", "pods", "-l", f"job-name={job_name}", "--wait=true")
        assert marina.kubectl("get", "pods", "-l", f"job-name={job_name}", "-o", "name").strip() == ""
        back = time.monotonic()
    status = marina.wait_ready("trainingjob", name, timeout=120)
    print(f"Ready {time.monotonic() - back:.1f}s after the operator was rolled out again, from {stored_at}")
    assert status["jobName"] == job_name and status["model"]["sha256"] == stored.summary["sha256"]
    after = marina.get("job", job_name)
    assert after["metadata"]["uid"] == job["metadata"]["uid"]  # the same Job object, never run again
    assert after["status"].get("succeeded") == 1 and not after["status"].get("failed")
    reasons = {event["reason"] for event in marina.events(name)}
    assert "ResultLost" not in reasons, reasons
    assert storage.exists(status["model"]["uri"])
    print(json.dumps({"job": job_name, "model": status["model"], "events": sorted(reasons)}))
