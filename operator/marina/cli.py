"""The `marina` console script: one entry point so one image can play every role.

Each sub-command lives in its own module, imported only when chosen, so `marina serve` never
loads kopf and `marina train` never loads the HTTP stack. A command module exposes
`configure(parser)` to declare its flags and `run(args) -> int` to do the work.
"""

from __future__ import annotations

import argparse
import ctypes
import importlib
import os
import signal
import sys
from collections.abc import Sequence
from types import FrameType
from typing import NoReturn

# Arrow's buffers from the C allocator (large ones mmap'd), not a pool that keeps freed memory: the data
# commands promise a peak bounded by a chunk and a part, measured as the process's RSS. Read by Arrow
# when it first allocates, so it is set before any command module imports pyarrow.
os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")

COMMANDS: dict[str, tuple[str, str]] = {
    "prepare": ("marina.jobs.prepare", "prepare, validate, split and version a dataset"),
    "train": ("marina.jobs.train", "fit a model on a prepared dataset and write its artifact"),
    "evaluate": ("marina.jobs.evaluate", "score a serving and a new model on the same test split"),
    "predict": (
        "marina.jobs.predict",
        "score a dataset in bulk: predictions, intervals, explanations, verdicts",
    ),
    "explain": ("marina.jobs.explain", "explain a model's predictions for a few rows"),
    "serve": ("marina.serving.command", "serve a model artifact over KServe v1 and Open Inference v2"),
    "operator": ("marina.controller.command", "run the Kubernetes operator"),
    "run": (
        "marina.local.run",
        "run Datasets, TrainingJobs and ModelDeployments on this machine, no cluster",
    ),
}


def build_parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="marina", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=_version())
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        sub = commands.add_parser(name, help=help_text, description=help_text)
        # Only the chosen command's module is imported (its dependencies may be absent).
        if name == _chosen_command(argv):
            module = importlib.import_module(module_name)
            module.configure(sub)
            sub.set_defaults(handler=module.run)
    return parser


def _chosen_command(argv: Sequence[str]) -> str | None:
    """The first positional argument: the sub-command the user asked for."""
    return next((arg for arg in argv if not arg.startswith("-")), None)


def _version() -> str:
    from marina import __version__

    return __version__


#: glibc's mallopt parameter for the size above which allocations are mmap'd.
_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD_BYTES = 1 << 20


def bound_the_heap() -> None:
    """Keep chunk-sized buffers out of the heap. glibc raises its mmap threshold after each large free (up
    to 32 MiB), so later chunk-sized buffers come from the heap, where freed ones are seldom given back:
    a streaming command's RSS then grows with the data (a 392 MB CSV prepared at 1.3 GiB). A fixed
    threshold keeps them mmap'd and returned as soon as they are freed."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return  # not glibc: nothing to tune
    libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_BYTES)


#: The commands a Job runs, as PID 1 of their container.
JOB_COMMANDS = ("prepare", "train", "evaluate", "predict")


def _terminated(signum: int, frame: FrameType | None) -> NoReturn:
    raise SystemExit(128 + signum)


def stop_on_sigterm() -> None:
    """Exit at once on SIGTERM (with the shell's 128 + 15). A Job's command is PID 1 of its container, and
    the kernel ignores a signal PID 1 has no handler for: an evicted or deleted pod ran on through its
    whole grace period (30 s) and could even finish the run it was asked to give up."""
    signal.signal(signal.SIGTERM, _terminated)


def main(argv: Sequence[str] | None = None) -> int:
    bound_the_heap()
    args_list = list(sys.argv[1:] if argv is None else argv)
    if _chosen_command(args_list) in JOB_COMMANDS:
        stop_on_sigterm()
    args = build_parser(args_list).parse_args(args_list)
    return int(args.handler(args))


if __name__ == "__main__":
    sys.exit(main())
