"""`marina evaluate`: score the serving model (champion) and a new one (challenger) on the same test split.

    marina evaluate --champion URI --champion-sha256 HEX --challenger URI --challenger-sha256 HEX
                    [--data DIR_OR_S3] [--result-file PATH]

The promotion gate (`spec.promotion.policy: IfBetter`) runs this in a Job before a new model may replace
the serving one. Both artifacts are read and verified by sha256; the split is the test split of `--data`,
by default the dataset version the challenger was trained on (its artifact records it), so the champion
is judged on data it never saw and the challenger on its own held-out rows. One streamed pass over the
split scores both, in bounded memory whatever its size.

The champion may come from an older dataset version whose columns differ. Its features are matched by
name: a one-hot column of a category the new data lacks is all zeros (the category never occurs, as
serving would encode it), a column the champion does not know is ignored (as serving ignores an unseen
category), and a number feature the new data lacks makes the two incomparable (a data failure).

Result JSON (stdout, one line, and `--result-file`):
  champion, challenger   {sha256, metrics: {mse, rmse, mae, r2}} on the test split
  datasetVersion, datasetUri, testRows
  format                 marina.dev/result/v1
Failures follow `marina.contract` (a missing artifact or split: storage kinds; incomparable: data).
The operator decides from these numbers (`marina.controller.modeldeployments.promotion`); this command
only measures.
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

from marina.contract import EvaluateRequest
from marina.data import dataset
from marina.data.encoding import parse as parse_inputs
from marina.data.table import DataError
from marina.jobs import results
from marina.model import artifact, scoring

DROPPABLE: tuple[str, ...] = ()
ABSENT = -1  # a model feature with no column in the data: all zeros


def configure(parser: argparse.ArgumentParser) -> None:
    EvaluateRequest.add_arguments(parser)


def run(args: argparse.Namespace) -> int:
    return results.run_command(
        "evaluate", lambda: evaluate_command(EvaluateRequest.from_args(args)), DROPPABLE, args.result_file
    )


def category_features(model: artifact.ModelArtifact) -> set[str]:
    """The model's one-hot feature names (a category level may be absent from other data)."""
    return {name for item in parse_inputs(model.inputs) if item.is_category for name in item.feature_names()}


def alignment(model: artifact.ModelArtifact, columns: tuple[str, ...], role: str) -> np.ndarray:
    """For each of the model's features, its position among the data's feature columns (ABSENT: zeros)."""
    position = {name: j for j, name in enumerate(columns)}
    levels = category_features(model)
    missing = [name for name in model.feature_names if name not in position and name not in levels]
    if missing:
        raise DataError(
            f"the {role} uses features the dataset lacks ({', '.join(missing[:5])}); "
            "the two models cannot be compared on it"
        )
    return np.array([position.get(name, ABSENT) for name in model.feature_names], dtype=np.intp)


def design(features: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """The data's feature columns rearranged into a model's feature order, zeros where ABSENT."""
    matrix = np.zeros((features.shape[0], positions.size))
    present = positions != ABSENT
    matrix[:, present] = features[:, positions[present]]
    return matrix


def evaluate_command(request: EvaluateRequest) -> dict[str, Any]:
    champion = artifact.load(request.champion, request.champion_sha256)
    challenger = artifact.load(request.challenger, request.challenger_sha256)
    data_uri = request.data or str(challenger.dataset.get("uri") or "")
    if not data_uri:
        raise DataError("the challenger's artifact records no dataset; give --data")
    stored = dataset.open_stored(dataset.locate(data_uri).folder)
    roles = {"champion": champion, "challenger": challenger}
    for role, model in roles.items():
        if model.target != stored.target:
            raise DataError(
                f"the {role} predicts {model.target!r}, the dataset's target is {stored.target!r}"
            )
    positions = {role: alignment(model, stored.feature_names, role) for role, model in roles.items()}
    moments = {role: scoring.ResidualMoments() for role in roles}
    for chunk in stored.chunks("test"):
        features, target = chunk[:, :-1], chunk[:, -1]
        for role, model in roles.items():
            moments[role].add(target, model.predict(design(features, positions[role])))
    if moments["champion"].rows == 0:
        raise DataError(f"the test split of {stored.uri} has no rows")
    digests = {"champion": request.champion_sha256, "challenger": request.challenger_sha256}
    return {
        **{role: {"sha256": digests[role], "metrics": moments[role].metrics()} for role in roles},
        "datasetVersion": stored.version,
        "datasetUri": stored.uri,
        "testRows": moments["champion"].rows,
    }
