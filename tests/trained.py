"""Datasets prepared and models trained by the real commands, for the tests of what models answer
(tests/ is on sys.path; conftest loads this module as a plugin, so its fixtures are everyone's)."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from marina.cli import main
from marina.data import dataset, parts
from marina.model import artifact


def run(*args: str) -> dict[str, Any]:
    """A command's result JSON; fails with its stderr when it fails."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    assert code == 0, err.getvalue()
    result: dict[str, Any] = json.loads(out.getvalue())
    return result


def prepare(source: str, output: Path, *options: str) -> str:
    """The prepared version's folder."""
    return str(run("prepare", "--source", source, "--output", str(output), *options)["uri"])


def train(data: str, output: Path, *options: str) -> artifact.ModelArtifact:
    result = run("train", "--data", data, "--output", str(output), *options)
    return artifact.load(result["uri"], result["sha256"])


def splits(data: str) -> dataset.PreparedDataset:
    """Both splits in memory, as the model's design (one-hot columns expanded)."""
    return dataset.open_stored(data).data


def version_folder(output: Path) -> str:
    (folder,) = (p for p in output.iterdir() if p.name != parts.PARTS_FOLDER)
    return str(folder)


def write_ill_conditioned(path: Path, rows: int = 400, seed: int = 11) -> float:
    """A CSV whose centred design has condition number ~1e7: x2 is x1 plus noise 1e-7 its size. Returns the
    noise level of the target."""
    rng = np.random.default_rng(seed)
    x1 = rng.normal(5.0, 2.0, rows)
    x2 = x1 + 2e-7 * rng.normal(size=rows)
    x3 = rng.normal(-3.0, 1.0, rows)
    x4 = rng.uniform(0.0, 10.0, rows)
    noise = 0.5
    y = 1.0 + 2.0 * x1 - 1.5 * x2 + 0.3 * x3 + 0.1 * x4 + noise * rng.normal(size=rows)
    lines = ["x1,x2,x3,x4,y"] + [
        ",".join(repr(float(v)) for v in values) for values in zip(x1, x2, x3, x4, y, strict=True)
    ]
    path.write_text("\n".join(lines) + "\n")
    return noise


@pytest.fixture(scope="session")
def diabetes_data(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The diabetes set prepared with the default split."""
    return prepare("builtin:diabetes", tmp_path_factory.mktemp("diabetes"))


@pytest.fixture(scope="session")
def diabetes_model(tmp_path_factory: pytest.TempPathFactory, diabetes_data: str) -> artifact.ModelArtifact:
    """Least squares on it, as `marina train` fits it by default."""
    return train(diabetes_data, tmp_path_factory.mktemp("diabetes-model"))


@pytest.fixture(scope="session")
def diabetes_model_v1(diabetes_model: artifact.ModelArtifact) -> artifact.ModelArtifact:
    """The same coefficients in an artifact from before the answers section (format v1)."""
    model = diabetes_model
    return artifact.ModelArtifact(
        model.coefficients, model.intercept, model.feature_names, format=artifact.FORMAT_V1
    )
