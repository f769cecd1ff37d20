"""Fixtures of the solver tests."""

from __future__ import annotations

import pytest
from solver_data import DATASETS, Dataset


@pytest.fixture(params=sorted(DATASETS))
def dataset(request: pytest.FixtureRequest) -> Dataset:
    return DATASETS[request.param]()
