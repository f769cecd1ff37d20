"""Conditions, events and Job results."""

from __future__ import annotations

import json
from typing import Any

import pytest

from marina.contract import Failure, FailureKind, encode
from marina.controller.shared import conditions, termination
from marina.controller.shared.conditions import Outcome, State


def clock() -> str:
    return "2026-01-01T00:00:00Z"


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        (State.READY, ("True", "False", "False")),
        (State.PROGRESSING, ("False", "True", "False")),
        (State.WAITING, ("False", "True", "False")),
        (State.FAILED, ("False", "False", "True")),
        (State.DEGRADED, ("True", "False", "True")),
    ],
)
def test_states_map_to_ready_reconciling_stalled(state: State, expected: tuple[str, ...]) -> None:
    patch = conditions.status_patch(Outcome(state, "Why", "because"), None, 3, clock)
    assert tuple(c["status"] for c in patch["conditions"]) == expected
    assert [c["type"] for c in patch["conditions"]] == ["Ready", "Reconciling", "Stalled"]
    assert patch["observedGeneration"] == 3 and all(c["observedGeneration"] == 3 for c in patch["conditions"])


def test_transition_time_moves_only_when_status_flips() -> None:
    first = conditions.status_patch(Outcome(State.PROGRESSING, "Preparing", "a"), None, 1, lambda: "T1")
    again = conditions.status_patch(Outcome(State.PROGRESSING, "Preparing", "b"), first, 1, lambda: "T2")
    done = conditions.status_patch(Outcome(State.READY, "Prepared", "c"), again, 1, lambda: "T3")
    assert [c["lastTransitionTime"] for c in again["conditions"]] == ["T1", "T1", "T1"]
    assert [c["lastTransitionTime"] for c in done["conditions"]] == ["T3", "T3", "T1"]


def test_events_follow_changes_of_ready_only() -> None:
    outcome = Outcome(State.FAILED, "InvalidSpec", "spec.x: bad")
    status = conditions.status_patch(outcome, None, 1, clock)
    assert conditions.needs_event(outcome, None)
    assert not conditions.needs_event(outcome, status)
    same_reason = Outcome(State.FAILED, "InvalidSpec", "spec.y: bad")
    assert not conditions.needs_event(same_reason, status)
    assert conditions.needs_event(Outcome(State.READY, "Prepared", "ok"), status)
    assert outcome.warning and not Outcome(State.READY, "Prepared", "ok").warning


def test_differs_skips_no_op_writes() -> None:
    status = conditions.status_patch(Outcome(State.READY, "Prepared", "ok", {"rows": 3}), None, 1, clock)
    assert not conditions.differs(
        conditions.status_patch(Outcome(State.READY, "Prepared", "ok", {"rows": 3}), status, 1, clock), status
    )
    assert conditions.differs({"rows": 4}, status)


def pod(state: dict[str, Any], created: str = "2026-01-01T00:00:00Z", **status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "p", "creationTimestamp": created},
        "status": {"containerStatuses": [{"name": "marina", "state": state, **status}]},
    }


def job(kind: str | None) -> dict[str, Any]:
    return {
        "status": {
            "conditions": [
                {
                    "type": kind,
                    "status": "True",
                    "reason": "BackoffLimitExceeded",
                    "message": "Job has reached the specified backoff limit",
                }
            ]
        }
        if kind
        else {}
    }


def test_success_reads_the_result_json() -> None:
    summary = {"version": "abc", "rows": 442}
    result = termination.job_result(job("Complete"), [pod({"terminated": {"message": json.dumps(summary)}})])
    assert result.phase is termination.JobPhase.SUCCEEDED and result.summary == summary


@pytest.mark.parametrize(
    ("message", "exit_code", "failure"),
    [
        (
            encode(Failure(FailureKind.DATA, "column 'city' row 2: 'unreachable' is not a number").to_json()),
            1,
            Failure(FailureKind.DATA, "column 'city' row 2: 'unreachable' is not a number"),
        ),
        (
            encode(Failure(FailureKind.STORAGE_UNAVAILABLE, "cannot read s3://m/k: SlowDown").to_json()),
            75,
            Failure(FailureKind.STORAGE_UNAVAILABLE, "cannot read s3://m/k: SlowDown"),
        ),
        (  # an older image's untyped error: permanent, whatever its words say
            '{"error": "cannot read s3://m/k: object storage at http://m:9 unreachable (Error: x)"}',
            1,
            Failure(
                FailureKind.INTERNAL,
                "cannot read s3://m/k: object storage at http://m:9 unreachable (Error: x)",
            ),
        ),
        (  # a crash's log tail (FallbackToLogsOnError)
            "Traceback (most recent call last):\n  ...\nImportError: no module",
            1,
            Failure(FailureKind.INTERNAL, "Traceback (most recent call last): ... ImportError: no module"),
        ),
        (  # a kind this operator does not know yet: the exit code says whether to retry
            json.dumps({"error": {"kind": "storage-quota", "message": "over quota"}}),
            75,
            Failure(FailureKind.STORAGE_UNAVAILABLE, "over quota"),
        ),
    ],
    ids=["data", "storage", "untyped-json", "log-tail", "unknown-kind"],
)
def test_failure_is_read_from_the_kind_never_the_words(
    message: str, exit_code: int, failure: Failure
) -> None:
    terminated = {"exitCode": exit_code, "message": message}
    result = termination.job_result(job("Failed"), [pod({"terminated": terminated})])
    assert result.phase is termination.JobPhase.FAILED and result.failure == failure


def test_failure_without_a_message_uses_the_job_condition() -> None:
    result = termination.job_result(job("Failed"), [])
    assert result.failure == Failure(
        FailureKind.INTERNAL, "BackoffLimitExceeded: Job has reached the specified backoff limit"
    )


def test_success_without_a_result_is_a_failure() -> None:
    result = termination.job_result(job("Complete"), [pod({"terminated": {"message": ""}})])
    assert result.phase is termination.JobPhase.FAILED and result.failure is not None
    assert "no result JSON" in result.failure.message


def test_running_job_reports_a_stuck_pod() -> None:
    waiting = {"waiting": {"reason": "CreateContainerConfigError", "message": 'secret "creds" not found'}}
    result = termination.job_result(job(None), [pod(waiting)])
    assert result.phase is termination.JobPhase.RUNNING
    assert result.problem == 'pod p: CreateContainerConfigError: secret "creds" not found'
    assert termination.job_result(job(None), [pod({"running": {}})]).problem is None


class ApiException(Exception):
    """What the client raises: the HTTP status, and the server's Status object as the body."""

    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"({status})\nReason: whatever\nHTTP response body: {body}")
        self.status, self.body = status, body

    def summary(self) -> str:
        return self.body


def server_status(code: int, reason: str, message: str) -> str:
    return json.dumps(
        {"kind": "Status", "status": "Failure", "code": code, "reason": reason, "message": message}
    )


@pytest.mark.parametrize(
    ("exc", "code", "reason", "line"),
    [
        (
            ApiException(
                403,
                server_status(403, "Forbidden", 'events "x." is forbidden: namespace x is being terminated'),
            ),
            403,
            "Forbidden",
            "post event Prepared on Dataset x/y: 403 Forbidden: "
            'events "x." is forbidden: namespace x is being terminated',
        ),
        (
            ApiException(
                422,
                server_status(
                    422, "Invalid", 'Deployment.apps "web" is invalid: spec.selector: field is immutable'
                ),
            ),
            422,
            "Invalid",
            "post event Prepared on Dataset x/y: 422 Invalid: "
            'Deployment.apps "web" is invalid: spec.selector: field is immutable',
        ),
        (
            ApiException(502, "<html>bad gateway</html>"),
            502,
            "",
            "post event Prepared on Dataset x/y: 502: <html>bad gateway</html>",
        ),
        (OSError("connection reset\nmore"), None, "", "post event Prepared on Dataset x/y: connection reset"),
    ],
    ids=["forbidden", "invalid", "not-a-status", "no-response"],
)
def test_api_errors_carry_code_and_reason_in_one_line(
    exc: Exception, code: int | None, reason: str, line: str
) -> None:
    from marina.controller.kube.client import Kube

    error = Kube._fail("post event Prepared on", "Dataset", "x/y", exc)
    assert (error.code, error.reason, str(error)) == (code, reason, line)
    assert not error.write
