"""One row's answer in JSON is written by a writer made once per kind of request (`outputs`); it must give
the very bytes the general path gives (tensors encoded as one document), for every model shape: numbers
and categories, with and without an intercept, Student-t and conformal intervals, rows inside and outside
the training data."""

from __future__ import annotations

import numpy as np
import pytest

from marina.model.artifact import ModelArtifact
from marina.serving import outputs, protocol
from marina.serving.model import ServedModel
from marina.serving.protocol import RequestedOutput
from tabular import write_diamonds
from trained import prepare, splits, train

ASKED = [
    ["predict", "contribution", "lower", "upper", "extrapolation"],
    ["extrapolation", "upper", "lower", "contribution", "predict"],
    ["contribution"],
    ["lower", "upper"],
    ["extrapolation", "predict"],
    ["upper"],
]


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[ModelArtifact, np.ndarray]]:
    """Each model with rows to ask about: test rows, and the first of them moved far out."""
    folder = tmp_path_factory.mktemp("outputs")
    diabetes = prepare("builtin:diabetes", folder / "diabetes")
    write_diamonds(folder / "diamonds.csv")
    diamonds = prepare(
        str(folder / "diamonds.csv"), folder / "d", "--target", "price", "--features", "carat,cut,color"
    )
    found = {}
    for name, data, options in [
        ("ols", diabetes, ()),
        ("ols-no-intercept", diabetes, ("--no-intercept",)),
        ("ridge", diabetes, ("--penalty", "l2", "--alpha", "0.1")),
        ("categories", diamonds, ()),
        ("categories-no-intercept", diamonds, ("--no-intercept",)),
    ]:
        rows = splits(data).x_test[:4].copy()
        far = rows[0].copy()
        far[0] += 10 * float(np.std(splits(data).x_train[:, 0])) + 1.0
        unseen = rows[1].copy()
        if name.startswith("categories"):
            unseen[1:] = 0.0  # every one-hot column zero: categories training never saw
        found[name] = (train(data, folder / name, *options), np.vstack([rows, far, unseen]))
    return found


MODELS = ["ols", "ols-no-intercept", "ridge", "categories", "categories-no-intercept"]


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("asked", ASKED, ids="-".join)
@pytest.mark.parametrize("request_id", [None, "r-1"])
def test_one_row_writer_gives_the_bytes_of_the_general_path(
    models: dict[str, tuple[ModelArtifact, np.ndarray]], name: str, asked: list[str], request_id: str | None
) -> None:
    artifact, rows = models[name]
    model = ServedModel.from_artifact(artifact, "m", "memory")
    requested = tuple(RequestedOutput(output, False, 0.9 if output == "lower" else 0.95) for output in asked)
    verdicts = set()
    for row in rows:
        features = row[None, :]
        computed = outputs.Computed(model, features, model.predict(features))
        fast, length = outputs.v2_response(computed, requested, request_id)
        general = protocol.encode_tensors(model, outputs.v2_tensors(computed, requested), request_id)
        assert (fast, length) == general
        verdicts.add(computed.verdicts().any_outside)
    assert verdicts == {False, True}  # rows inside and outside both written


def test_a_binary_output_takes_the_general_path(models: dict[str, tuple[ModelArtifact, np.ndarray]]) -> None:
    artifact, rows = models["ols"]
    model = ServedModel.from_artifact(artifact, "m", "memory")
    features = rows[:1]
    computed = outputs.Computed(model, features, model.predict(features))
    requested = (RequestedOutput("predict", False, 0.95), RequestedOutput("contribution", True, 0.95))
    content, length = outputs.v2_response(computed, requested, None)
    assert length is not None and (content, length) == protocol.encode_tensors(
        model, outputs.v2_tensors(computed, requested), None
    )
