"""A Dataset with parallelism: an Indexed Job of shards, then the reduce; the status follows both."""

from __future__ import annotations

import json
from typing import Any

import pytest

from marina.controller.datasets import reconcile as datasets
from marina.controller.kube.settings import Settings
from marina.controller.shared.conditions import State

RESULT = {
    "format": "marina.dev/result/v1",
    "version": "0123456789abcdef",
    "uri": "s3://marina/datasets/default/wide/0123456789abcdef",
    "rows": 1000,
    "columns": ["x0", "y"],
    "shards": 3,
}


def args_of(kube: Any, job_name: str) -> list[str]:
    job = kube.get("batch/v1", "Job", "default", job_name)
    return list(job["spec"]["template"]["spec"]["containers"][0]["args"])


def flag(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


def test_shards_run_as_an_indexed_job_then_the_reduce_writes_the_dataset(
    kube: Any, settings: Settings
) -> None:
    kube.add_resource("Dataset", "wide", {"source": {"synthetic": {"rows": 1000}}, "parallelism": 3})
    outcome = datasets.reconcile(kube, settings, kube.current("Dataset", "wide"))
    (shards,) = kube.jobs()
    spec = kube.get("batch/v1", "Job", "default", shards)["spec"]
    assert (spec["completionMode"], spec["completions"], spec["parallelism"]) == ("Indexed", 3, 3)
    assert spec["backoffLimitPerIndex"] == 2 and spec["maxFailedIndexes"] == 0
    args = args_of(kube, shards)
    partials = flag(args, "--partials")
    assert (flag(args, "--phase"), flag(args, "--shards")) == ("shard", "3")
    assert partials.startswith("s3://marina/datasets/default/wide/partials/")
    assert (outcome.state, outcome.reason) == (State.PROGRESSING, "PreparingShards")
    assert "reading the source in 3 shards" in outcome.message

    kube.finish_job(
        shards, json.dumps({"format": "marina.dev/result/v1", "partial": f"{partials}/shard-2.json"})
    )
    outcome = datasets.reconcile(kube, settings, kube.current("Dataset", "wide"))
    reduce = next(name for name in kube.jobs() if name != shards)
    args = args_of(kube, reduce)
    assert (flag(args, "--phase"), flag(args, "--partials"), flag(args, "--shards")) == (
        "reduce",
        partials,
        "3",
    )
    assert (outcome.reason, "merging the 3 shards" in outcome.message) == ("Preparing", True)
    kube.finish_job(reduce, json.dumps(RESULT))
    outcome = datasets.reconcile(kube, settings, kube.current("Dataset", "wide"))
    status = kube.current("Dataset", "wide")["status"]
    assert outcome.state is State.READY and (status["version"], status["shards"]) == ("0123456789abcdef", 3)
    assert "prepared by 3 pods" in outcome.message

    kube.objects[("marina.dev/v1alpha1", "Dataset", "default", "wide")]["spec"]["parallelism"] = 1
    # How, not what, is prepared: the same version whatever the pods, so no new run.
    outcome = datasets.reconcile(kube, settings, kube.current("Dataset", "wide"))
    assert outcome.state is State.READY and len(kube.jobs()) == 2


def test_inline_rows_reach_every_shard_and_the_reduce(kube: Any, settings: Settings) -> None:
    rows = [[float(k), 2.0 * k] for k in range(10)]
    inline = {"inline": {"columns": ["x", "y"], "rows": rows}}
    kube.add_resource("Dataset", "small", {"source": inline, "target": "y", "parallelism": 2})
    datasets.reconcile(kube, settings, kube.current("Dataset", "small"))
    (shards,) = kube.jobs()
    kube.finish_job(shards, json.dumps({"format": "marina.dev/result/v1"}))
    datasets.reconcile(kube, settings, kube.current("Dataset", "small"))
    volumes = {
        name: kube.get("batch/v1", "Job", "default", name)["spec"]["template"]["spec"]["volumes"]
        for name in kube.jobs()
    }
    mounted = {
        name: [v["configMap"]["name"] for v in found if "configMap" in v] for name, found in volumes.items()
    }
    (config_map,) = {name for names in mounted.values() for name in names}
    assert len(mounted) == 2 and all(mounted.values())
    assert kube.get("v1", "ConfigMap", "default", config_map) is not None


def test_running_shards_report_their_merged_progress(
    kube: Any, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    reports: dict[str, Any] = {}
    monkeypatch.setattr("marina.jobs.progress.read", lambda uri: reports.get(uri))
    kube.add_resource("Dataset", "wide", {"source": {"synthetic": {"rows": 1000}}, "parallelism": 2})
    datasets.reconcile(kube, settings, kube.current("Dataset", "wide"))
    (job_name,) = kube.jobs()
    uri = flag(args_of(kube, job_name), "--progress")
    reports[uri.removesuffix(".json") + "-shard-0.json"] = {"rows": 300, "total": 500}
    reports[uri.removesuffix(".json") + "-shard-1.json"] = {"rows": 200, "total": 500}
    outcome = datasets.reconcile(kube, settings, kube.current("Dataset", "wide"))
    shown = kube.current("Dataset", "wide")["status"]["progress"]
    assert (shown["rows"], shown["percent"], shown["shardsDone"], shown["shards"]) == (500, 50.0, 0, 2)
    assert "0 of 2 done (500 rows, 50.0%)" in outcome.message


def test_a_failed_shard_fails_the_dataset_with_its_reason(kube: Any, settings: Settings) -> None:
    from marina.contract import Failure, FailureKind

    kube.add_resource("Dataset", "bad", {"source": {"synthetic": {"rows": 1000}}, "parallelism": 2})
    datasets.reconcile(kube, settings, kube.current("Dataset", "bad"))
    (shards,) = kube.jobs()
    kube.fail_job(shards, Failure(FailureKind.DATA, "column 'x' row 7: 'a' is not a number"))
    outcome = datasets.reconcile(kube, settings, kube.current("Dataset", "bad"))
    assert outcome.state is State.FAILED and "row 7" in outcome.message and kube.jobs() == [shards]


def test_a_run_in_flight_keeps_its_shard_count(kube: Any, settings: Settings) -> None:
    kube.add_resource("Dataset", "wide", {"source": {"synthetic": {"rows": 1000}}, "parallelism": 2})
    datasets.reconcile(kube, settings, kube.current("Dataset", "wide"))
    (shards,) = kube.jobs()
    kube.objects[("marina.dev/v1alpha1", "Dataset", "default", "wide")]["spec"]["parallelism"] = 3
    kube.finish_job(shards, json.dumps({"format": "marina.dev/result/v1"}))
    datasets.reconcile(kube, settings, kube.current("Dataset", "wide"))
    reduce = next(name for name in kube.jobs() if name != shards)
    assert flag(args_of(kube, reduce), "--shards") == "2"  # the partial results the shards wrote


def test_a_one_pod_run_forgets_the_shard_jobs_of_earlier_inputs(kube: Any, settings: Settings) -> None:
    kube.add_resource("Dataset", "wide", {"source": {"synthetic": {"rows": 1000}}, "parallelism": 2})
    datasets.reconcile(kube, settings, kube.current("Dataset", "wide"))
    (shards,) = kube.jobs()
    kube.finish_job(shards, json.dumps({"format": "marina.dev/result/v1"}))
    datasets.reconcile(kube, settings, kube.current("Dataset", "wide"))
    (reduce,) = [name for name in kube.jobs() if name != shards]
    kube.finish_job(reduce, json.dumps(RESULT))
    datasets.reconcile(kube, settings, kube.current("Dataset", "wide"))
    changed = {"source": {"synthetic": {"rows": 2000}}, "parallelism": 1}
    kube.objects[("marina.dev/v1alpha1", "Dataset", "default", "wide")]["spec"] = changed
    datasets.reconcile(kube, settings, kube.current("Dataset", "wide"))
    (single,) = [name for name in kube.jobs() if name not in (shards, reduce)]
    kube.finish_job(single, json.dumps({**RESULT, "version": "fedcba9876543210", "shards": 1}))
    outcome = datasets.reconcile(kube, settings, kube.current("Dataset", "wide"))
    assert outcome.state is State.READY and kube.jobs() == [single]
