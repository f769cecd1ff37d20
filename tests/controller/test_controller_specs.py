"""Spec parsing: valid specs become the exact command arguments; invalid ones name the field."""

from __future__ import annotations

import json
from typing import Any

import pytest

from marina.controller.datasets import spec as dataset_spec
from marina.controller.modeldeployments import spec as modeldeployment_spec
from marina.controller.shared.fields import InvalidSpec
from marina.controller.trainingjobs import spec as trainingjob_spec

INLINE = {"columns": ["x", "target"], "rows": [[1, 2], [2, 4], [3, 6]]}


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ({"builtin": "diabetes"}, "builtin:diabetes"),
        ({"csv": {"uri": "s3://marina/raw/houses.csv"}}, "s3://marina/raw/houses.csv"),
        (
            {"synthetic": {"rows": 50, "features": 3, "noise": 0.5, "seed": 1}},
            "synthetic:rows=50,features=3,noise=0.5,seed=1,missing=0.0",
        ),
        ({"inline": INLINE}, "inline"),
        ({"servedLogs": {"modelDeployment": "houses"}}, "served"),
        ({"builtin": "diabetes", "servedLogs": {"modelDeployment": "houses"}}, "builtin:diabetes"),
    ],
)
def test_dataset_sources_become_the_prepare_source(source: dict[str, Any], expected: str) -> None:
    assert dataset_spec.parse({"source": source}).source == expected


def test_served_logs_name_their_deployment_and_window_with_the_live_checks_defaults() -> None:
    alone = dataset_spec.parse({"source": {"servedLogs": {"modelDeployment": "houses", "windowHours": 72}}})
    assert alone.served == dataset_spec.ServedLogs("houses", 72, 24, 500_000)
    assert alone.source_kind == "servedLogs" and alone.stored_uri is None
    beside = dataset_spec.parse(
        {"source": {"csv": {"uri": "s3://marina/raw/ns/a.csv"}, "servedLogs": {"modelDeployment": "houses"}}}
    )
    assert beside.served is not None and beside.uri_field == "spec.source.csv.uri"
    assert dataset_spec.parse({"source": {"builtin": "diabetes"}}).served is None


def test_dataset_defaults_and_inline_rows() -> None:
    spec = dataset_spec.parse({"source": {"inline": INLINE}})
    assert (spec.target, spec.missing, spec.test_fraction, spec.seed, spec.features) == (
        "target",
        "drop",
        0.2,
        42,
        None,
    )
    assert json.loads(spec.inline_rows or "") == [
        {"x": 1, "target": 2},
        {"x": 2, "target": 4},
        {"x": 3, "target": 6},
    ]


@pytest.mark.parametrize(
    ("spec", "field", "words"),
    [
        ({}, "spec.source", "exactly one"),
        ({"source": {"builtin": "diabetes", "csv": {"uri": "s3://b/k.csv"}}}, "spec.source", "exactly one"),
        ({"source": {"builtin": "boston"}}, "spec.source.builtin", "one of diabetes"),
        ({"source": {"csv": {"uri": "/etc/passwd"}}}, "spec.source.csv.uri", "does not match"),
        ({"source": {"csv": {}}}, "spec.source.csv.uri", "is required"),
        (
            {"source": {"builtin": "diabetes", "servedLogs": {"modelDeployment": "m"}}, "parallelism": 2},
            "spec.parallelism",
            "prepares in one pod",
        ),
        (
            {"source": {"builtin": "diabetes"}, "split": {"testFraction": 1.0}},
            "spec.split.testFraction",
            "(0, 1)",
        ),
        (
            {"source": {"builtin": "diabetes"}, "split": {"testFraction": 0}},
            "spec.split.testFraction",
            "(0, 1)",
        ),
        ({"source": {"builtin": "diabetes"}, "split": {"seed": -1}}, "spec.split.seed", "[0"),
        (
            {"source": {"builtin": "diabetes"}, "cleaning": {"missing": "guess"}},
            "spec.cleaning.missing",
            "drop",
        ),
        ({"source": {"builtin": "diabetes"}, "features": ["bmi", "target"]}, "spec.features", "target"),
        (
            {"source": {"inline": {"columns": ["x", "y"], "rows": [[1, 2], [3, 4]]}}},
            "spec.source.inline.columns",
            "target",
        ),
        (
            {"source": {"inline": {"columns": ["x", "target"], "rows": [[1, 2], [3]]}}},
            "spec.source.inline.rows[1]",
            "2 values",
        ),
        ({"source": {"synthetic": {"missing": 1.0}}}, "spec.source.synthetic.missing", "[0, 1)"),
        ({"source": {"servedLogs": {}}}, "spec.source.servedLogs.modelDeployment", "is required"),
        (
            {"source": {"servedLogs": {"modelDeployment": "m", "windowHours": 0}}},
            "spec.source.servedLogs.windowHours",
            "[1, 2160]",
        ),
        (
            {"source": {"builtin": "diabetes", "inline": INLINE, "servedLogs": {"modelDeployment": "m"}}},
            "spec.source",
            "servedLogs may be set beside it, or alone",
        ),
        (
            {"source": {"builtin": "diabetes"}, "resources": {"limits": {"memory": "lots"}}},
            "spec.resources.limits.memory",
            "quantity",
        ),
    ],
)
def test_dataset_errors_name_the_field(spec: dict[str, Any], field: str, words: str) -> None:
    with pytest.raises(InvalidSpec) as caught:
        dataset_spec.parse(spec)
    assert caught.value.field == field
    assert words in str(caught.value)


def test_trainingjob_defaults() -> None:
    spec = trainingjob_spec.parse({"dataset": {"name": "diabetes"}})
    assert spec.model == trainingjob_spec.ModelParameters()
    assert (spec.dataset_version, spec.search, spec.backoff_limit, spec.active_deadline_seconds) == (
        None,
        None,
        1,
        3600,
    )


def test_trainingjob_search() -> None:
    spec = trainingjob_spec.parse(
        {
            "dataset": {"name": "d"},
            "model": {"penalty": "elasticnet"},
            "search": {"alphas": [0.1, 1], "l1Ratios": [0.2, 0.8], "folds": 3},
        }
    )
    assert spec.search == trainingjob_spec.Search((0.1, 1.0), (0.2, 0.8), 3)


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({}, "spec.dataset.name"),
        ({"dataset": {"name": "d", "version": "latest"}}, "spec.dataset.version"),
        ({"dataset": {"name": "d"}, "model": {"penalty": "l3"}}, "spec.model.penalty"),
        ({"dataset": {"name": "d"}, "model": {"alpha": -1}}, "spec.model.alpha"),
        ({"dataset": {"name": "d"}, "model": {"l1Ratio": 1.5}}, "spec.model.l1Ratio"),
        ({"dataset": {"name": "d"}, "model": {"penalty": "l1", "solver": "normal"}}, "spec.model.solver"),
        ({"dataset": {"name": "d"}, "model": {"standardize": "yes"}}, "spec.model.standardize"),
        ({"dataset": {"name": "d"}, "model": {"maxIter": 0}}, "spec.model.maxIter"),
        ({"dataset": {"name": "d"}, "search": {"alphas": [1]}}, "spec.search"),
        (
            {"dataset": {"name": "d"}, "model": {"penalty": "l2"}, "search": {"alphas": []}},
            "spec.search.alphas",
        ),
        (
            {
                "dataset": {"name": "d"},
                "model": {"penalty": "l2"},
                "search": {"alphas": [1], "l1Ratios": [0.5]},
            },
            "spec.search.l1Ratios",
        ),
        ({"dataset": {"name": "d"}, "backoffLimit": 11}, "spec.backoffLimit"),
    ],
)
def test_trainingjob_errors_name_the_field(spec: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidSpec) as caught:
        trainingjob_spec.parse(spec)
    assert caught.value.field == field


def test_modeldeployment_from_uri_and_autoscaling() -> None:
    sha = "a" * 64
    spec = modeldeployment_spec.parse(
        {"model": {"uri": "s3://marina/models/m.json", "sha256": sha}, "autoscaling": {"maxReplicas": 4}}
    )
    assert spec.model == modeldeployment_spec.ModelSource(uri="s3://marina/models/m.json", sha256=sha)
    assert spec.autoscaling == modeldeployment_spec.Autoscaling(
        1, 4, 80, scale_down_stabilization_seconds=300
    )
    assert (spec.replicas, spec.progress_deadline_seconds) == (1, 120)


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"model": {}}, "spec.model"),
        ({"model": {"trainingJob": "t", "uri": "s3://marina/m.json", "sha256": "a" * 64}}, "spec.model"),
        ({"model": {"trainingJob": "t", "sha256": "a" * 64}}, "spec.model.sha256"),
        ({"model": {"uri": "s3://marina/m.json"}}, "spec.model.sha256"),
        ({"model": {"uri": "s3://marina/m.json", "sha256": "XYZ"}}, "spec.model.sha256"),
        ({"model": {"trainingJob": "t"}, "replicas": -1}, "spec.replicas"),
        (
            {"model": {"trainingJob": "t"}, "autoscaling": {"minReplicas": 3, "maxReplicas": 2}},
            "spec.autoscaling.minReplicas",
        ),
        ({"model": {"trainingJob": "t"}, "autoscaling": {}}, "spec.autoscaling.maxReplicas"),
        *(
            (
                {
                    "model": {"trainingJob": "t"},
                    "autoscaling": {"maxReplicas": 2, "scaleDownStabilizationSeconds": s},
                },
                "spec.autoscaling.scaleDownStabilizationSeconds",
            )
            for s in (-1, 3601, "60")
        ),
        (
            {"model": {"trainingJob": "t"}, "rollout": {"progressDeadlineSeconds": 1}},
            "spec.rollout.progressDeadlineSeconds",
        ),
        *(
            (
                {"model": {"trainingJob": "t"}, "disruption": {"maxUnavailable": bad}},
                "spec.disruption.maxUnavailable",
            )
            for bad in (0, "0%", "101%", "half", True)
        ),
        ({"model": {"trainingJob": "t"}, "serving": {"extrapolation": "Warn"}}, "spec.serving.extrapolation"),
    ],
)
def test_modeldeployment_errors_name_the_field(spec: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidSpec) as caught:
        modeldeployment_spec.parse(spec)
    assert caught.value.field == field


@pytest.mark.parametrize(
    ("spec", "budget", "extrapolation"),
    [
        ({"replicas": 1}, None, "Allow"),
        ({"replicas": 2}, 1, "Allow"),
        ({"replicas": 0}, None, "Allow"),
        ({"replicas": 1, "autoscaling": {"minReplicas": 3, "maxReplicas": 5}}, 1, "Allow"),
        (
            {"replicas": 5, "disruption": {"maxUnavailable": "40%"}, "serving": {"extrapolation": "Reject"}},
            "40%",
            "Reject",
        ),
    ],
)
def test_modeldeployment_disruption_budget_and_serving(
    spec: dict[str, Any], budget: int | str | None, extrapolation: str
) -> None:
    parsed = modeldeployment_spec.parse({"model": {"trainingJob": "t"}, **spec})
    assert (parsed.disruption_budget, parsed.serving.extrapolation) == (budget, extrapolation)
