"""`marina explain`: a model's answers for a few rows, each raw input's contribution among them.

    marina explain --model URI [--sha256 HEX] (--row JSON | --data SOURCE [--split test] [--rows 10])
                   [--level 0.95]

Rows come as JSON (`--row '{"age": 0.03, ...}'`, a list in input order, or a list of either) or as the
first `--rows` rows of a source `marina predict` reads. The answer is what `POST /v1/models/<m>:explain`
says, from the same code (`marina.model.answers`): per row the prediction, the base value (the
prediction at the training means), one contribution per raw input adding up to the prediction, the
interval and the guard's verdict. One JSON line on stdout; failures by `marina.contract`.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from typing import Any

import numpy as np

from marina.contract import ExplainRequest, PredictRequest, SpecError
from marina.data.encoding import EncodingError
from marina.jobs import results
from marina.jobs.predict import Scorer, open_data
from marina.model import artifact
from marina.model.answers import AnswerError, Answers

DROPPABLE: tuple[str, ...] = ()


def configure(parser: argparse.ArgumentParser) -> None:
    ExplainRequest.add_arguments(parser)


def run(args: argparse.Namespace) -> int:
    return results.run_command(
        "explain", lambda: explain_command(ExplainRequest.from_args(args)), DROPPABLE, args.result_file
    )


def rows_of_json(text: str, answers: Answers) -> np.ndarray:
    """`--row`: the model's design for one row or a list of rows, keyed by input name or in input order."""
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise SpecError(f"--row: not JSON ({exc})") from None
    rows = value if isinstance(value, list) and value and isinstance(value[0], list | Mapping) else [value]
    names = answers.input_names
    ordered = []
    for index, row in enumerate(rows):
        if isinstance(row, Mapping):
            unknown = sorted(set(row) - set(names))
            missing = [name for name in names if name not in row]
            if unknown or missing:
                problem = (
                    f"unknown inputs {', '.join(unknown)}"
                    if unknown
                    else f"missing inputs {', '.join(missing)}"
                )
                raise SpecError(f"--row: row {index}: {problem}; the inputs are {', '.join(names)}")
            row = [row[name] for name in names]
        if not isinstance(row, list) or len(row) != len(names):
            raise SpecError(f"--row: row {index}: expected {len(names)} values ({', '.join(names)})")
        ordered.append(row)
    try:
        features, _ = answers.inputs.encode([list(column) for column in zip(*ordered, strict=True)])
    except EncodingError as exc:
        raise SpecError(f"--row: {exc}") from None
    return features


def explain_command(request: ExplainRequest) -> dict[str, Any]:
    model = artifact.load(request.model, request.sha256)
    answers = Answers(model)
    features = rows_of_json(request.row, answers) if request.row is not None else first_rows(request, model)
    predictions = features @ np.asarray(model.coefficients) + model.intercept
    try:
        explanations = answers.explanations(features, predictions, request.level)
    except AnswerError as exc:
        raise SpecError(str(exc)) from None
    return {
        "model": {"uri": request.model, "sha256": model.sha256},
        "base": answers.base,
        "inputs": list(answers.input_names),
        "explanations": explanations,
    }


def first_rows(request: ExplainRequest, model: artifact.ModelArtifact) -> np.ndarray:
    """The first `--rows` rows of `--data`, as `marina predict` reads and encodes them."""
    scoring = PredictRequest(
        request.model, request.data or "", "", sha256=request.sha256, split=request.split
    )
    scorer = Scorer(model, scoring)
    blocks, count = [], 0
    for unit in open_data(scoring).units:
        for table in unit.read(scorer.selected):
            blocks.append(scorer.features(table, count)[: request.rows - count])
            count += len(blocks[-1])
            if count >= request.rows:
                return np.vstack(blocks)
    if not blocks:
        raise SpecError(f"--data: {request.data} has no rows")
    return np.vstack(blocks)
