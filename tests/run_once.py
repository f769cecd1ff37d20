"""Set-up that runs once per test run, however many pytest-xdist workers (or pytest invocations of one
`make test`) ask for it: bringing the cluster up, building and loading images, deploying MinIO and the
operator (the session fixtures of conftest.py and e2e/conftest.py).

The first caller takes a lock and does it; the others wait on the lock and find it done (or failed, and
fail with the same message at once). What was done is kept as files in the run folder: `<name>.done`
holds what the action returned, `<name>.failed` its failure. hack/test.sh writes `<name>.done` itself for
the steps it runs before pytest (it runs them beside the unit tests).
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

RUN_FOLDER_ENV = "MARINA_TEST_RUN"  # set by hack/test.sh so its pytest invocations share one run


def _run_folder(factory: pytest.TempPathFactory) -> Path:
    """Where this test run keeps what `once` did: $MARINA_TEST_RUN when set (one run of several pytest
    invocations), else the folder every pytest-xdist worker of this session shares (their base temporary
    folders' parent), else this session's own base temporary folder."""
    shared = os.environ.get(RUN_FOLDER_ENV)
    if shared:
        folder = Path(shared)
    else:
        base = factory.getbasetemp()
        folder = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "marina-once"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # waits for the worker doing it
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def once(factory: pytest.TempPathFactory, name: str, action: Callable[[], str | None]) -> str:
    """Runs `action` once per test run (see `_run_folder`) and returns what it returned, kept in the run
    folder as `<name>.done`. A failure (pytest.fail) is kept as `<name>.failed`: every later caller fails at
    once with the same message instead of trying again (which takes as long and fails alike)."""
    folder = _run_folder(factory)
    done, failed = folder / f"{name}.done", folder / f"{name}.failed"
    with _locked(folder / f"{name}.lock"):
        if done.exists():
            return done.read_text()
        if failed.exists():
            pytest.fail(f"{failed.read_text()} (failed earlier in this run)", pytrace=False)
        try:
            result = action() or ""
        except pytest.fail.Exception as error:
            failed.write_text(str(error.msg))
            raise
        done.write_text(result)
        return result
