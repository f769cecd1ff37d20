"""Running `prepare` and `train` by the result contract (`marina.contract`), so both behave alike.

On success a command prints ONE compact JSON line on stdout and writes the same JSON to
`--result-file` (the operator passes `/dev/termination-log`, which Kubernetes caps at 4096 bytes) and
exits 0. On failure it prints `marina <command>: error: <message>` as one line on stderr, writes
`{"format": ..., "error": {"kind": ..., "message": ...}}` to the result file and exits with the kind's
code (1 permanent, 75 retryable, 70 a bug), so the operator can decide without reading the message.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from marina.contract import EXIT_INTERNAL, EXIT_SUCCESS, Failure, FailureKind, JobError, Success, encode
from marina.text import one_line

RESULT_LIMIT = 4096


def compact(
    summary: Mapping[str, Any], droppable: Sequence[str], limit: int = RESULT_LIMIT
) -> dict[str, Any]:
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


def _write(result_file: str | None, text: str) -> None:
    if result_file:
        with open(result_file, "w", encoding="utf-8") as handle:
            handle.write(text)


def run_command(
    name: str, work: Callable[[], dict[str, Any]], droppable: Sequence[str], result_file: str | None
) -> int:
    """Run a command's work, reporting its summary or its typed failure by the contract."""
    try:
        summary = Success(work()).to_json()
    except JobError as exc:
        return _fail(name, Failure(exc.kind, one_line(str(exc))), result_file)
    except Exception as exc:  # a bug still gets a clear one-line report
        traceback.print_exc(file=sys.stderr)
        message = one_line(f"unexpected {type(exc).__name__}: {exc}")
        return _fail(name, Failure(FailureKind.INTERNAL, message), result_file)
    text = encode(compact(summary, droppable))
    print(text, flush=True)
    try:
        _write(result_file, text)
    except OSError as exc:
        print(f"marina {name}: error: cannot write the result file {result_file}: {exc}", file=sys.stderr)
        return EXIT_INTERNAL
    return EXIT_SUCCESS


def _fail(name: str, failure: Failure, result_file: str | None) -> int:
    print(f"marina {name}: error: {failure.message}", file=sys.stderr, flush=True)
    try:
        _write(result_file, encode(failure.to_json()))
    except OSError as exc:
        print(f"marina {name}: cannot write the result file {result_file}: {exc}", file=sys.stderr)
    return failure.exit_code
