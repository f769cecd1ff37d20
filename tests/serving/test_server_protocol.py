"""What a request's `outputs` list parses to is remembered by the model (clients send the same few): the
remembered answer must be the one a fresh parse gives, for every level and binary flag, and a refused list
must be refused every time."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from marina.model.artifact import ModelArtifact
from marina.serving import jsoncodec, protocol
from marina.serving.errors import BadRequest
from marina.serving.model import ServedModel
from marina.serving.protocol import RequestedOutput


@pytest.fixture
def model(diabetes_model: ModelArtifact) -> ServedModel:
    return ServedModel.from_artifact(diabetes_model, "m", "memory")


def parse(model: ServedModel, outputs: Any, **parameters: Any) -> Any:
    return protocol._requested_outputs({"outputs": outputs, "parameters": parameters}, model)


def test_a_list_asked_again_gets_the_same_answer_and_each_level_and_flag_its_own(model: ServedModel) -> None:
    asked = [{"name": "lower"}, {"name": "predict"}]
    first = parse(model, asked)
    assert first == ((RequestedOutput("lower", False, 0.95), RequestedOutput("predict", False, 0.95)), False)
    assert parse(model, asked) is first
    assert parse(model, asked, level=0.9)[0][0] == RequestedOutput("lower", False, 0.9)
    assert parse(model, asked, binary_data_output=True) == (
        (RequestedOutput("lower", True, 0.95), RequestedOutput("predict", True, 0.95)),
        True,
    )
    assert parse(model, [{"name": "predict"}], binary_data_output=True) == (None, True)


@pytest.mark.parametrize(
    ("outputs", "parameters", "error"),
    [
        ([{"name": "lower"}], {"level": 1}, "parameter 'level' must be a number in (0, 1)"),
        ([{"name": "lower"}], {"level": True}, "parameter 'level' must be a number in (0, 1)"),
        ([{"name": "lower"}], {"level": 1.5}, "parameter 'level' must be a number in (0, 1)"),
        ([{"name": "lower"}, {"name": "lower"}], {}, "output 'lower' is asked for more than once"),
        ([{"name": "nope"}], {}, "unknown output 'nope'"),
    ],
)
def test_a_refused_list_is_refused_every_time(
    model: ServedModel, outputs: Any, parameters: dict[str, Any], error: str
) -> None:
    parse(model, [{"name": "lower"}], level=0.5)  # something valid remembered beside it
    for _ in range(2):
        with pytest.raises(BadRequest, match=error.replace("(", r"\(").replace(")", r"\)")):
            parse(model, outputs, **parameters)


def test_what_is_remembered_is_bounded(model: ServedModel) -> None:
    for k in range(protocol.PARSED_OUTPUTS + 10):
        level = 0.5 + k / 1000
        assert parse(model, [{"name": "upper"}], level=level)[0] == (RequestedOutput("upper", False, level),)
    assert len(model.parsed_outputs) == protocol.PARSED_OUTPUTS


def test_a_list_nested_deeper_than_the_encoder_goes_is_still_read(model: ServedModel) -> None:
    deep: dict[str, Any] = {"a": 1}
    for _ in range(400):
        deep = {"a": deep}
    assert parse(model, [{"name": "upper", "parameters": {"x": deep}}])[0] == (
        RequestedOutput("upper", False, 0.95),
    )


@pytest.mark.parametrize("request_id", [None, "r-1", 'quote " back \\ ü \u2028'])
@pytest.mark.parametrize("name", ["m", "a.b_c-d"])
def test_one_prediction_in_json_is_the_bytes_of_the_document(
    diabetes_model: ModelArtifact, request_id: str | None, name: str
) -> None:
    model = ServedModel.from_artifact(diabetes_model, name, "memory")
    for prediction in (-0.18232991123071285, 1e-300, 123456789.0, 0.0):
        document: dict[str, Any] = {"model_name": name, "model_version": model.version}
        if request_id is not None:
            document["id"] = request_id
        document["outputs"] = [{"name": "predict", "datatype": "FP64", "shape": [1], "data": [prediction]}]
        assert protocol.encode_v2(model, np.array([prediction]), request_id) == (
            jsoncodec.dumps(document),
            None,
        )
