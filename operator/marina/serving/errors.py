"""Typed request errors and the one table that maps them to HTTP statuses.

Protocol and model code raise these; only the ASGI app turns them into responses, so every
endpoint reports the same problem with the same status and the same `{"error": ...}` body.
"""

from __future__ import annotations


class ServingError(Exception):
    """A request cannot be answered; the message says what is wrong and is safe to return."""


class BadRequest(ServingError):
    """The body is malformed or does not fit the model (shape, datatype, values, fields)."""


class Unprocessable(ServingError):
    """The body is well formed, but the server refuses to answer it (a row outside the training data
    under `--extrapolation reject`)."""


class NotFound(ServingError):
    """No such path, model or model version."""


class MethodNotAllowed(ServingError):
    """The path exists but not for this HTTP method."""

    def __init__(self, message: str, allowed: tuple[str, ...]) -> None:
        super().__init__(message)
        self.allowed = allowed


class PayloadTooLarge(ServingError):
    """The body exceeds the server's limit."""


class NotReady(ServingError):
    """The model is not loaded (yet) or the server is shutting down."""


class Overloaded(ServingError):
    """Answering now would take more memory than the server may use; the client should retry."""


STATUS_BY_ERROR: dict[type[ServingError], int] = {
    BadRequest: 400,
    Unprocessable: 422,
    NotFound: 404,
    MethodNotAllowed: 405,
    PayloadTooLarge: 413,
    NotReady: 503,
    Overloaded: 503,
}


def status_of(error: ServingError) -> int:
    """The HTTP status for an error (500 only for a ServingError subclass missing from the table)."""
    for cls, status in STATUS_BY_ERROR.items():
        if isinstance(error, cls):
            return status
    return 500
