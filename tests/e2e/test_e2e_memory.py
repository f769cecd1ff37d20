"""A Job's pod killed at its memory limit on the real cluster: the kernel's OOM killer, the kubelet's
`OOMKilled`, the Job failed at once by its podFailurePolicy, and the Dataset reporting `OutOfMemory`
with the limit and the field to raise; raising it prepares the data."""

from __future__ import annotations

import json
from typing import Any

LIMIT = "24Mi"  # Python, numpy and one 50,000 x 100 float64 array (40 MB) do not fit
SOURCE = {"synthetic": {"rows": 50_000, "features": 100, "seed": 3}}


def dataset(name: str, memory: str) -> dict[str, Any]:
    return {
        "apiVersion": "marina.dev/v1alpha1",
        "kind": "Dataset",
        "metadata": {"name": name},
        "spec": {"source": SOURCE, "resources": {"limits": {"memory": memory}}},
    }


def jobs_of(marina: Any, name: str) -> list[dict[str, Any]]:
    found = json.loads(marina.kubectl("get", "jobs", "-l", f"marina.dev/dataset={name}", "-o", "json"))
    return list(found["items"])


def test_pod_killed_at_its_memory_limit_is_out_of_memory_until_the_limit_is_raised(marina: Any) -> None:
    name = "too-little-memory"
    marina.apply(dataset(name, LIMIT))
    ready = marina.wait_reason("dataset", name, "OutOfMemory", timeout=180)
    job_name = marina.status("dataset", name)["jobName"]
    pods = json.loads(marina.kubectl("get", "pods", "-l", f"job-name={job_name}", "-o", "json"))["items"]
    assert len(pods) == 1, [p["metadata"]["name"] for p in pods]  # not retried: the same limit fails alike
    (terminated,) = (s["state"]["terminated"] for s in pods[0]["status"]["containerStatuses"])
    assert (terminated["reason"], terminated["exitCode"]) == ("OOMKilled", 137)
    assert ready["status"] == "False"
    assert ready["message"] == (
        f"Job {job_name}: pod {pods[0]['metadata']['name']}: container marina was killed at its memory "
        f"limit of {LIMIT}; raise spec.resources.limits.memory"
    )
    assert marina.condition("dataset", name, "Stalled")["status"] == "True"
    (job,) = jobs_of(marina, name)
    failed = [c for c in job["status"].get("conditions", []) if c["type"] == "Failed"]
    assert failed and failed[0]["reason"] == "PodFailurePolicy", job["status"]
    warnings = marina.wait_for(
        "a Warning event OutOfMemory",
        lambda: [e for e in marina.events(name) if (e["type"], e["reason"]) == ("Warning", "OutOfMemory")],
        timeout=30,
    )
    assert LIMIT in warnings[0]["message"]

    marina.apply(dataset(name, "1Gi"))  # what the message says to do
    status = marina.wait_ready("dataset", name, timeout=110)
    assert status["rows"] == 50_000 and status["jobName"] != job_name
