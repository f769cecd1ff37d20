"""The answers beside a prediction, as the protocols carry them: v2 output tensors, the v1 `:explain`
body, and the refusal of rows outside the training data. The maths is `marina.model.answers`; this
module only asks it for what a request named (computing each thing once) and shapes the result.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from marina.model.answers import INSIDE, ONE_ROW_KINDS, AnswerError, Answers, Verdicts
from marina.serving import jsoncodec, protocol
from marina.serving.errors import BadRequest, Unprocessable
from marina.serving.model import CONTRIBUTION, EXTRAPOLATION, LOWER, OUTPUT_NAME, UPPER, ServedModel
from marina.serving.protocol import RequestedOutput, Tensor

ALLOW, REJECT = "allow", "reject"
EXTRAPOLATION_POLICIES = (ALLOW, REJECT)
#: One row's answer in JSON: (its features, its prediction, the request's id) -> the response body.
OneRowWriter = Callable[[np.ndarray, float, "str | None"], bytes]
_UNKNOWN: Any = object()


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
    """What one request's outputs need, computed together (sharing x - μ and the leverages) and once."""

    def __init__(self, model: ServedModel, features: np.ndarray, predictions: np.ndarray) -> None:
        self.model, self.features, self.predictions = model, features, predictions
        self.answers = answers_of(model)
        self._verdicts: Verdicts | None = None
        self.widths: dict[float, np.ndarray | float] = {}
        self._contributions: np.ndarray | list[float] | None = None

    def prepare(
        self, contributions: bool = False, levels: Sequence[float] = (), verdicts: bool = False
    ) -> None:
        """Compute what is asked and not yet at hand, in one pass."""
        if self.widths:
            levels = [level for level in levels if level not in self.widths]
        contributions = contributions and self._contributions is None
        verdicts = verdicts and self._verdicts is None
        if not (levels or contributions or verdicts):
            return
        try:
            answered = self.answers.answer(self.features, contributions, levels, verdicts)
        except AnswerError as exc:
            raise BadRequest(str(exc)) from None
        self.widths.update(answered.widths)
        self._contributions = answered.contributions if contributions else self._contributions
        self._verdicts = answered.verdicts if verdicts else self._verdicts

    def verdicts(self) -> Verdicts:
        if self._verdicts is None:
            self.prepare(verdicts=True)
        assert self._verdicts is not None
        return self._verdicts

    def width(self, level: float) -> np.ndarray | float:
        self.prepare(levels=(level,))
        return self.widths[level]

    def contributions(self) -> np.ndarray:
        """(rows, inputs)."""
        if self._contributions is None:
            self.prepare(contributions=True)
        assert self._contributions is not None
        return np.atleast_2d(np.asarray(self._contributions, dtype=np.float64))


def _prepare_for(computed: Computed, requested: Sequence[RequestedOutput]) -> bool:
    """Everything the named outputs need, in one pass; whether any of them is binary."""
    contributions = verdicts = binary = False
    levels = []
    for name, as_binary, level in requested:
        binary = binary or as_binary
        if name == CONTRIBUTION:
            contributions = True
        elif name == EXTRAPOLATION:
            verdicts = True
        elif name in (LOWER, UPPER):
            levels.append(level)
    computed.prepare(contributions, levels, verdicts)
    return binary


def v2_response(
    computed: Computed, requested: Sequence[RequestedOutput], request_id: str | None
) -> tuple[bytes, int | None]:
    """The response body for named outputs (and the JSON header's length when some are binary)."""
    model, features, predictions = computed.model, computed.features, computed.predictions
    return v2_answer(model, features, predictions, requested, request_id, computed)


def v2_answer(
    model: ServedModel,
    features: np.ndarray,
    predictions: np.ndarray,
    requested: Sequence[RequestedOutput],
    request_id: str | None,
    computed: Computed | None = None,
) -> tuple[bytes, int | None]:
    """`v2_response` for a request's rows (with what was computed for them already, if anything). One row
    in JSON, the usual online request, is written straight from Python values, with no `Computed`."""
    if len(predictions) == 1:
        writer = _one_row_writer(model, requested)
        if writer is not None:
            return writer(features, predictions.item(), request_id), None
    computed = computed or Computed(model, features, predictions)
    return protocol.encode_tensors(model, v2_tensors(computed, requested), request_id)


def v2_tensors(computed: Computed, requested: Sequence[RequestedOutput]) -> list[Tensor]:
    """The named outputs, in the order named, from one pass over what they need."""
    _prepare_for(computed, requested)
    predictions, widths = computed.predictions, computed.widths
    rows = len(predictions)
    tensors = []
    for name, binary, level in requested:
        if name == OUTPUT_NAME:
            tensors.append(Tensor(name, "FP64", [rows], predictions, binary))
        elif name == CONTRIBUTION:
            values = computed.contributions()
            tensors.append(Tensor(name, "FP64", [rows, values.shape[1]], values, binary))
        elif name == LOWER:
            tensors.append(Tensor(name, "FP64", [rows], predictions - widths[level], binary))
        elif name == UPPER:
            tensors.append(Tensor(name, "FP64", [rows], predictions + widths[level], binary))
        elif name == EXTRAPOLATION:
            tensors.append(Tensor(name, "BYTES", [rows], computed.verdicts().labels(), binary))
        else:  # decode_v2 admits only the names above
            raise BadRequest(f"unknown output '{name}'")
    return tensors


def _one_row_writer(model: ServedModel, requested: Sequence[RequestedOutput]) -> OneRowWriter | None:
    """The writer of one row's answer to these outputs in JSON (None when one is binary), made once per
    kind of request and remembered by the model (a server sees the same few)."""
    writers = model.one_row_writers
    writer: OneRowWriter | None = writers.get(requested, _UNKNOWN)
    if writer is _UNKNOWN:
        writer = _compile_writer(model, requested)
        if len(writers) < ONE_ROW_KINDS:
            writers[requested] = writer
    return writer


def _compile_writer(model: ServedModel, requested: Sequence[RequestedOutput]) -> OneRowWriter | None:
    """One row's outputs in JSON, written from Python values: the same floating-point operations as the
    arrays' (each value one IEEE operation on the same operands), with no array, tensor object or cache
    per value. The fixed bytes between the values (the head, each output up to its data, and the data of
    an inside verdict) are joined here once; a request adds only its values."""
    if any(binary for _, binary, _ in requested):
        return None
    names = [name for name, _, _ in requested]
    levels = [level for name, _, level in requested if name in (LOWER, UPPER)]
    with answerable():
        answer = answers_of(model).one_row(CONTRIBUTION in names, levels, EXTRAPOLATION in names)
    dumps, head, prefixes = jsoncodec.dumps, model.json_head, model.json_prefixes
    listing, inside = b',"outputs":[', dumps([INSIDE])
    opening = head + listing
    # each output's bytes up to its data (after the end of the one before), and what its data is as a
    # small integer (compared at once, where a name would be a global looked up per output)
    kinds = {OUTPUT_NAME: 0, CONTRIBUTION: 1, LOWER: 2, UPPER: 3, EXTRAPOLATION: 4}
    steps = [
        (b"}," * bool(k) + prefixes[name], kinds[name], level) for k, (name, _, level) in enumerate(requested)
    ]

    def write(features: np.ndarray, prediction: float, request_id: str | None) -> bytes:
        answered = answer(features)
        widths = answered.widths
        parts = [opening if request_id is None else b"".join([head, b',"id":', dumps(request_id), listing])]
        append = parts.append
        for prefix, kind, level in steps:
            append(prefix)
            if kind == 0:  # predict
                append(dumps([prediction]))
            elif kind == 1:  # contribution
                append(dumps(answered.contributions))
            elif kind == 2:  # lower
                append(dumps([prediction - widths[level]]))
            elif kind == 3:  # upper
                append(dumps([prediction + widths[level]]))
            else:  # extrapolation
                verdicts = answered.verdicts
                assert verdicts is not None
                append(dumps(verdicts.labels()) if verdicts.any_outside else inside)
        append(b"}]}")
        return b"".join(parts)

    return write


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
