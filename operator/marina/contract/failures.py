"""What a Job answers when it fails: a kind of failure, its exit code, and the errors commands raise.

A command that fails writes `{"format": "marina.dev/result/v1", "error": {"kind": ..., "message": ...}}`
(`marina.contract.results`) and exits with its kind's code: 1 for a permanent failure (fix the data or the
spec), 75 (EX_TEMPFAIL) for one worth retrying (object storage down, credentials refused or missing) and
70 (EX_SOFTWARE) for a bug. The operator decides from `kind`, never from the message text.
"""

from __future__ import annotations

import enum
from typing import ClassVar

EXIT_SUCCESS = 0
EXIT_PERMANENT = 1  # the Job fails at once (podFailurePolicy FailJob): only a new spec or data helps
EXIT_INTERNAL = 70  # EX_SOFTWARE: a bug; failing again would teach nothing, so also FailJob
EXIT_RETRYABLE = 75  # EX_TEMPFAIL: the environment, not the input; retried (pod, then a new Job)


class FailureKind(enum.StrEnum):
    DATA = "data"  # the data cannot be used (a bad cell, too few rows, a corrupted prepared set)
    SPEC = "spec"  # a request or parameter value is wrong
    TRAINING = "training"  # the fit itself failed (diverged, produced no usable model)
    STORAGE_NOT_FOUND = "storage-not-found"  # an object or bucket named in the request does not exist
    STORAGE_REJECTED = "storage-rejected"  # object storage refused the request itself (e.g. a bad name)
    STORAGE_UNAVAILABLE = "storage-unavailable"  # unreachable, overloaded, full, answering 5xx
    STORAGE_DENIED = "storage-denied"  # the credentials were refused
    STORAGE_CONFIG = "storage-config"  # the endpoint or the credentials are missing from the environment
    INTERNAL = "internal"  # a bug, or a failure without a machine-readable kind (an old image, a crash)

    @property
    def retryable(self) -> bool:
        return self in RETRYABLE_KINDS

    @property
    def exit_code(self) -> int:
        if self.retryable:
            return EXIT_RETRYABLE
        return EXIT_INTERNAL if self is FailureKind.INTERNAL else EXIT_PERMANENT


RETRYABLE_KINDS = frozenset(
    {FailureKind.STORAGE_UNAVAILABLE, FailureKind.STORAGE_DENIED, FailureKind.STORAGE_CONFIG}
)


class JobError(Exception):
    """A failure a command expects and explains; its class says which `FailureKind` it is."""

    kind: ClassVar[FailureKind] = FailureKind.INTERNAL


class SpecError(JobError, ValueError):
    """A request or parameter value breaks the contract; the message names the flag or field."""

    kind = FailureKind.SPEC
