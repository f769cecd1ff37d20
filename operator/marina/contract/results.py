"""The result document a Job's command writes (its pod's termination message), and how it is read back."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from marina.contract.failures import EXIT_RETRYABLE, FailureKind
from marina.system.text import one_line

RESULT_FORMAT = "marina.dev/result/v1"


@dataclass(frozen=True)
class Failure:
    kind: FailureKind
    message: str

    @property
    def exit_code(self) -> int:
        return self.kind.exit_code

    def to_json(self) -> dict[str, Any]:
        return {"format": RESULT_FORMAT, "error": {"kind": str(self.kind), "message": self.message}}


@dataclass(frozen=True)
class Success:
    summary: Mapping[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {**self.summary, "format": RESULT_FORMAT}


def encode(value: Mapping[str, Any]) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True, allow_nan=False)


def kind_for_exit_code(exit_code: int | None) -> FailureKind:
    """The kind of a failure that did not say one: retryable by its exit code, else internal (permanent)."""
    return FailureKind.STORAGE_UNAVAILABLE if exit_code == EXIT_RETRYABLE else FailureKind.INTERNAL


def parse_result(text: str | None, exit_code: int | None = None) -> Success | Failure | None:
    """Read a result file. Text without a kind — the old `{"error": "text"}`, or a log tail written by
    FallbackToLogsOnError after a crash — is a failure of the kind its exit code implies, never one
    guessed from its words. None when there is nothing to read."""
    if not text or not text.strip():
        return None
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        return Failure(kind_for_exit_code(exit_code), one_line(text, keep_end=True))
    if "error" not in value:
        return Success({k: v for k, v in value.items() if k != "format"})
    error = value["error"]
    if not isinstance(error, dict):
        return Failure(kind_for_exit_code(exit_code), one_line(str(error)))
    kind = str(error.get("kind", ""))
    known = kind in FailureKind.__members__.values()
    message = one_line(str(error.get("message", "")))
    return Failure(FailureKind(kind) if known else kind_for_exit_code(exit_code), message)
