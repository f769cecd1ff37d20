"""Fixtures for the prediction server: a small artifact on disk and an in-process ASGI client."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from marina.artifact import ModelArtifact, save
from marina.server.app import ServingApp
from marina.server.model import ServedModel

FEATURES = ["age", "bmi", "bp"]
TRAINING: dict[str, dict[str, Any]] = {  # the training split's statistics, as `marina train` records them
    "age": {"count": 100, "mean": 2.0, "std": 2.0, "min": 0.0, "max": 9.0, "missing": 0},
    "bmi": {"count": 100, "mean": 5.0, "std": 0.0, "min": 5.0, "max": 5.0, "missing": 0},
    "bp": {"count": 100, "mean": 7.5, "std": 3.0, "min": 1.0, "max": 20.0, "missing": 2},
}


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


@dataclass
class Client:
    """Synchronous calls into an ASGI app through httpx's in-process transport."""

    app: ServingApp

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        async def call() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://marina") as client:
                return await client.request(method, path, **kwargs)

        return asyncio.run(call())

    def get(self, path: str) -> httpx.Response:
        return self.request("GET", path)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", path, **kwargs)


@pytest.fixture
def client(served: ServedModel) -> Client:
    return Client(ServingApp(served))


@pytest.fixture
def make_client() -> Callable[..., Client]:
    return lambda *args, **kwargs: Client(ServingApp(*args, **kwargs))
