"""Running `prepare` and `train` by the result contract (`marina.contract`), so both behave alike.

On success a command prints ONE compact JSON line on stdout and writes the same JSON to
`--result-file` (the operator passes `/dev/termination-log`, which Kubernetes caps at 4096 bytes) and
exits 0. On failure it prints `marina <command>: error: <message>` as one line on stderr, writes
`{"format": ..., "error": {"kind": ..., "message": ...}}` to the result file and exits with the kind's
code (1 permanent, 75 retryable, 70 a bug), so the operator can decide without reading the message.

The termination message lives only as long as the pod. So when the operator names a place in
`MARINA_RESULT_URI` (its Jobs do: `<resource prefix>/results/<Job name>.json`), the same document is
also stored there, with the pod's own (the namespace's) storage identity, before the command exits. A
Job that succeeded but whose pod is gone is then read from storage (`read_stored`) instead of being run
again. Storing is best effort, like a progress report: the termination message stays the first
channel, so a storage hiccup never fails a finished command. A failure that storage itself caused (a
retryable kind) is not stored: storage is what failed, and the operator retries such a Job anyway.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from marina import storage
from marina.contract import (
    EXIT_INTERNAL,
    EXIT_SUCCESS,
    RESULT_FORMAT,
    Failure,
    FailureKind,
    JobError,
    Success,
    encode,
    parse_result,
)
from marina.system.text import one_line

RESULT_LIMIT = 4096
#: Where a Job's command also stores its result document (set by the operator on its Jobs' containers).
RESULT_URI_ENV = "MARINA_RESULT_URI"


def result_uri(prefix: str, job_name: str) -> str:
    """The stored result of a Job: under its resource's own prefix (which the namespace's identity may
    write), keyed by the Job's name, which is already derived from the Job's inputs."""
    return f"{prefix}/results/{job_name}.json"


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


def store(name: str, text: str, uri: str | None = None) -> None:
    """Store the result document at `uri` (default: `$MARINA_RESULT_URI`); never fails the command."""
    uri = uri or os.environ.get(RESULT_URI_ENV)
    if not uri:
        return
    try:
        storage.write_bytes(uri, text.encode(), "application/json")
    except storage.StorageError as exc:  # the termination message still carries it
        print(f"marina {name}: result not stored ({exc})", file=sys.stderr, flush=True)


def read_stored(uri: str) -> Success | Failure | None:
    """The stored result at `uri`; None when there is none, it cannot be read, or it is not a result
    document (a stored object without the contract's format is not taken for one)."""
    try:
        text = storage.read_bytes(uri).decode()
        document = json.loads(text)
    except (storage.StorageError, ValueError):  # UnicodeDecodeError is a ValueError
        return None
    if not isinstance(document, dict) or document.get("format") != RESULT_FORMAT:
        return None
    return parse_result(text)


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
    store(name, text)
    try:
        _write(result_file, text)
    except OSError as exc:
        print(f"marina {name}: error: cannot write the result file {result_file}: {exc}", file=sys.stderr)
        return EXIT_INTERNAL
    return EXIT_SUCCESS


def _fail(name: str, failure: Failure, result_file: str | None) -> int:
    print(f"marina {name}: error: {failure.message}", file=sys.stderr, flush=True)
    text = encode(failure.to_json())
    if not failure.kind.retryable:
        store(name, text)
    try:
        _write(result_file, text)
    except OSError as exc:
        print(f"marina {name}: cannot write the result file {result_file}: {exc}", file=sys.stderr)
    return failure.exit_code
