"""Modules imported when first used, for a process that may never need them.

The operator reads Parquet (payload logs, for live accuracy) only when a ModelDeployment logs and is
labelled; importing pyarrow at start cost every operator 41-49 MiB of its 512Mi (a third of its memory
with 1,000 objects), whether or not anything it watches logs a request.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any


class Lazy:
    """Stands for the module `name`: the first attribute read imports it, later reads go to it."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._module: ModuleType | None = None

    def __getattr__(self, attribute: str) -> Any:
        module = self._module
        if module is None:
            module = self._module = importlib.import_module(self._name)
        return getattr(module, attribute)

    def __repr__(self) -> str:
        return f"<module {self._name!r}, imported when first used>"
