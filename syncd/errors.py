"""The one error tree: each class knows its HTTP status, machine code and WebSocket close code."""

from __future__ import annotations

from typing import Any


class SyncdError(Exception):
    status = 400
    code = "bad_request"
    close_code = 4409

    def __init__(self, message: str, details: dict[str, Any] | None = None,
                 code: str | None = None):
        super().__init__(message)
        self.message = message
        self.details = details or {}
        if code is not None:
            self.code = code

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


class BadRequest(SyncdError):
    """The request is not well-formed: wrong shape, types, encoding."""


class PayloadTooLarge(SyncdError):
    status = 413
    code = "too_large"


class Unauthorized(SyncdError):
    status = 401
    code = "unauthorized"
    close_code = 4401


class Forbidden(SyncdError):
    status = 403
    code = "forbidden"
    close_code = 4403


class NotFound(SyncdError):
    status = 404
    code = "not_found"
    close_code = 4404


class Conflict(SyncdError):
    status = 409
    code = "conflict"


class PreconditionFailed(SyncdError):
    status = 412
    code = "precondition_failed"


class TooManyRequests(SyncdError):
    status = 429
    code = "rate_limited"

    def __init__(self, message: str, retry_after: int):
        super().__init__(message, {"retry_after": retry_after})
        self.retry_after = retry_after


class Unavailable(SyncdError):
    status = 503
    code = "unavailable"
    close_code = 1013


class ClientSeqGap(Conflict):
    code = "client_seq_gap"

    def __init__(self, expected: int):
        super().__init__(f"client_seq must continue from {expected}", {"expected": expected})


class OpRejected(Exception):
    """A well-formed op the domain refuses: consumed, reported per op, nothing written."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message
