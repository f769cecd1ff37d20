"""A module stood for by `Lazy` is imported on its first use, and the operator starts without pyarrow."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from marina.system.modules import Lazy

OPERATOR = Path(__file__).resolve().parents[2] / "operator"


def imported(code: str) -> list[str]:
    """The modules a fresh interpreter holds after `code` (this one has imported everything already)."""
    environment = {**os.environ, "PYTHONPATH": str(OPERATOR)}
    shown = f"{code}\nimport sys\nprint(' '.join(sorted(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", shown], capture_output=True, text=True, env=environment)
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def test_a_lazy_module_is_imported_on_first_use_and_then_answers_as_the_module() -> None:
    before = imported("from marina.system.modules import Lazy\nstatistics = Lazy('statistics')")
    assert "statistics" not in before
    after = imported("from marina.system.modules import Lazy\nLazy('statistics').median([1, 3])")
    assert "statistics" in after
    assert Lazy("statistics").median([1.0, 2.0, 6.0]) == 2.0


def test_the_operator_starts_without_pyarrow_until_it_reads_served_rows() -> None:
    started = imported("import marina.controller.handlers")
    assert "marina.data.served" in started  # its names are used
    assert not [name for name in started if name.split(".")[0] == "pyarrow"]
    reading = imported(
        "import marina.controller.handlers\nfrom marina.data import served\nserved._empty(('id',))"
    )
    assert "pyarrow" in reading
