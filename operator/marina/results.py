"""The result contract of the `prepare` and `train` commands, shared so both behave alike.

On success a command prints ONE compact JSON line on stdout and writes the same JSON to
`--result-file` (the operator passes `/dev/termination-log`, which Kubernetes caps at 4096 bytes).
On failure it prints `error: <message>` as one line on stderr, writes `{"error": "<message>"}` to the
result file and exits 1, so the operator can copy the message into the resource's status.
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from marina.artifact import ArtifactError
from marina.dataset import DataError
from marina.storage import StorageError

RESULT_LIMIT = 4096
MESSAGE_LIMIT = 1024
EXPECTED_ERRORS = (DataError, StorageError, ArtifactError)
T = TypeVar("T")


def parse_value(text: str, flag: str, kind: Callable[[str], T]) -> T:
    """Flag values are parsed here rather than by argparse, so a bad one still reaches the result file."""
    try:
        return kind(text.strip())
    except (TypeError, ValueError) as exc:
        name = "integer" if kind is int else "number"
        raise DataError(f"{flag}: {text!r} is not a valid {name}") from exc


def add_result_file(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--result-file",
        metavar="PATH",
        help="also write the result JSON here (the operator uses /dev/termination-log)",
    )


def encode(summary: dict[str, Any]) -> str:
    return json.dumps(summary, separators=(",", ":"), sort_keys=True, allow_nan=False)


def compact(summary: dict[str, Any], droppable: Sequence[str], limit: int = RESULT_LIMIT) -> dict[str, Any]:
    """Drop optional keys (least useful first) until the JSON fits; `truncated` lists what went."""
    result = dict(summary)
    dropped: list[str] = []
    for key in droppable:
        if len(encode(result).encode()) < limit:
            break
        if key in result:
            del result[key]
            dropped.append(key)
            result["truncated"] = dropped
    return result


def one_line(message: str) -> str:
    text = " ".join(message.split())
    return text if len(text) <= MESSAGE_LIMIT else text[: MESSAGE_LIMIT - 3] + "..."


def _write(result_file: str | None, text: str) -> None:
    if result_file:
        with open(result_file, "w", encoding="utf-8") as handle:
            handle.write(text)


def run_command(
    name: str, work: Callable[[], dict[str, Any]], droppable: Sequence[str], result_file: str | None
) -> int:
    """Run a command's work, reporting its summary or its error by the contract above."""
    try:
        summary = compact(work(), droppable)
    except EXPECTED_ERRORS as exc:
        return _fail(name, one_line(str(exc)), result_file)
    except Exception as exc:  # a bug still gets a clear one-line report
        traceback.print_exc(file=sys.stderr)
        return _fail(name, one_line(f"unexpected {type(exc).__name__}: {exc}"), result_file)
    text = encode(summary)
    print(text, flush=True)
    try:
        _write(result_file, text)
    except OSError as exc:
        print(f"marina {name}: error: cannot write the result file {result_file}: {exc}", file=sys.stderr)
        return 1
    return 0


def _fail(name: str, message: str, result_file: str | None) -> int:
    print(f"marina {name}: error: {message}", file=sys.stderr, flush=True)
    try:
        _write(result_file, encode({"error": message}))
    except OSError as exc:
        print(f"marina {name}: cannot write the result file {result_file}: {exc}", file=sys.stderr)
    return 1
