"""The console script: a Job's command stops at once on SIGTERM, even as PID 1 of its container."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

OPERATOR = Path(__file__).resolve().parents[1] / "operator"
STOPPED_BY_SIGTERM = 128 + signal.SIGTERM


def test_a_job_command_exits_with_128_plus_sigterm() -> None:
    """Without the handler, a process ended by SIGTERM has no exit code (-15 here), and as PID 1 it would
    not end at all; with it, the command unwinds and exits 143 however it is running."""
    script = textwrap.dedent(
        """
        import os, signal, time
        from marina import cli
        cli.stop_on_sigterm()
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(30)
        """
    )
    environment = {**os.environ, "PYTHONPATH": str(OPERATOR)}
    done = subprocess.run([sys.executable, "-c", script], env=environment, timeout=20, check=False)
    assert done.returncode == STOPPED_BY_SIGTERM


@pytest.mark.parametrize(
    ("command", "takes_over"), [("train", True), ("prepare", True), ("evaluate", True), ("serve", False)]
)
def test_only_job_commands_take_over_sigterm(command: str, takes_over: bool) -> None:
    """`serve` and `operator` keep their own graceful shutdown (uvicorn's and kopf's handlers)."""
    from marina import cli

    before = signal.signal(signal.SIGTERM, signal.SIG_DFL)  # as a fresh process has it
    try:
        with pytest.raises(SystemExit) as help_shown:
            cli.main([command, "--help"])
        assert help_shown.value.code == 0
        assert (signal.getsignal(signal.SIGTERM) is cli._terminated) is takes_over
    finally:
        signal.signal(signal.SIGTERM, before)
