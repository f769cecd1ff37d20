"""The answers beside a prediction, as the protocols carry them: v2 output tensors, the v1 `:explain`
body, and the refusal of rows outside the training data. The maths is `marina.model.answers`; this
module only asks it for what a request named (computing each thing once) and shapes the result.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from marina.model.answers import AnswerError, Answers, Verdicts
from marina.serving.errors import BadRequest, Unprocessable
from marina.serving.model import CONTRIBUTION, EXTRAPOLATION, LOWER, OUTPUT_NAME, UPPER, ServedModel
from marina.serving.protocol import RequestedOutput, Tensor

ALLOW, REJECT = "allow", "reject"
EXTRAPOLATION_POLICIES = (ALLOW, REJECT)


@contextmanager
def answerable() -> Iterator[None]:
    """A model that cannot answer what was asked is the request's problem: 400, saying why."""
    try:
        yield
    except AnswerError as exc:
        raise BadRequest(str(exc)) from None


def answers_of(model: ServedModel) -> Answers:
    if model.answers is None:
        raise BadRequest(f"model '{model.name}' has no training statistics to answer with; retrain it")
    return model.answers


class Computed:
    """What one request's outputs need, each computed at most once."""

    def __init__(self, model: ServedModel, features: np.ndarray, predictions: np.ndarray) -> None:
        self.model, self.features, self.predictions = model, features, predictions
        self._verdicts: Verdicts | None = None
        self._widths: dict[float, np.ndarray | float] = {}

    @property
    def answers(self) -> Answers:
        return answers_of(self.model)

    def verdicts(self) -> Verdicts:
        if self._verdicts is None:
            self._verdicts = self.answers.verdicts(self.features)
        return self._verdicts

    def width(self, level: float) -> np.ndarray | float:
        if level not in self._widths:
            with answerable():
                self._widths[level] = self.answers.half_widths(self.features, level)
        return self._widths[level]

    def contributions(self) -> np.ndarray:
        with answerable():
            return self.answers.contributions(self.features)


def v2_tensors(computed: Computed, requested: Sequence[RequestedOutput]) -> list[Tensor]:
    """The named outputs, in the order named."""
    rows = len(computed.predictions)
    tensors = []
    for output in requested:
        values: np.ndarray | list[str]
        datatype, shape = "FP64", [rows]
        if output.name == OUTPUT_NAME:
            values = computed.predictions
        elif output.name == CONTRIBUTION:
            values = computed.contributions()
            shape = [rows, values.shape[1]]
        elif output.name == LOWER:
            values = computed.predictions - computed.width(output.level)
        elif output.name == UPPER:
            values = computed.predictions + computed.width(output.level)
        elif output.name == EXTRAPOLATION:
            values, datatype = computed.verdicts().labels(), "BYTES"
        else:  # decode_v2 admits only the names above
            raise BadRequest(f"unknown output '{output.name}'")
        tensors.append(Tensor(output.name, datatype, shape, values, output.binary))
    return tensors


def v1_explanation(computed: Computed, level: float) -> dict[str, Any]:
    """`:explain`'s answer: per row the prediction, the base value, one contribution per raw input
    (summing with the base to the prediction), the interval when the model records one, and the guard's
    verdict."""
    model, answers = computed.model, computed.answers
    with answerable():
        explanations = answers.explanations(computed.features, computed.predictions, level)
    document: dict[str, Any] = {
        "model_name": model.name,
        "model_version": model.version,
        "base": answers.base,
        "inputs": list(answers.input_names),
        "explanations": explanations,
    }
    if answers.record is not None:
        document["intervals"] = {"method": answers.record.method, "level": level}
    return document


def refusal(model: ServedModel, features: np.ndarray, verdicts: Verdicts) -> Unprocessable:
    """The 422 for a request with rows outside the training data: the first such row and why."""
    outside = np.flatnonzero(verdicts.outside)
    row = int(outside[0])
    answers = answers_of(model)
    details = [answers.explain_reason(reason, features[row]) for reason in verdicts.reasons(row)]
    return Unprocessable(
        f"row {row} is outside the training data: {'; '.join(details)}; {outside.size} of {len(features)} "
        "rows are outside and this server rejects extrapolation (--extrapolation reject)"
    )
