"""Fixtures for the prediction server: a small artifact on disk and an in-process ASGI client."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from server_helpers import FEATURES, TRAINING, Client

from marina.model.artifact import ModelArtifact, save
from marina.serving.app import ServingApp
from marina.serving.model import ServedModel


@pytest.fixture(scope="session")
def artifact() -> ModelArtifact:
    return ModelArtifact(
        coefficients=[1.5, -2.0, 0.25],
        intercept=3.0,
        feature_names=FEATURES,
        dataset={"name": "diabetes"},
        feature_statistics={name: TRAINING[name] for name in FEATURES},
    )


@pytest.fixture
def artifact_file(artifact: ModelArtifact, tmp_path: Path) -> tuple[str, str]:
    """(path, sha256) of the artifact written the way `marina train` writes it."""
    return save(artifact, str(tmp_path))


@pytest.fixture
def served(artifact: ModelArtifact) -> ServedModel:
    return ServedModel.from_artifact(artifact, "diabetes", "memory")


@pytest.fixture
def client(served: ServedModel) -> Client:
    return Client(ServingApp(served))


@pytest.fixture
def make_client() -> Callable[..., Client]:
    return lambda *args, **kwargs: Client(ServingApp(*args, **kwargs))
