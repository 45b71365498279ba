"""The client's error tree, rooted at `SyncdClientError`.

Server refusals arrive as `{"error": {"code", "message", "details"}}` and become
`ApiError` with the HTTP status kept, so callers can branch on `code`.
"""

from __future__ import annotations

from typing import Any


class SyncdClientError(Exception):
    """Base class of every error this package raises on purpose."""


class NotLoggedIn(SyncdClientError):
    """The store has no device yet: call `login()` before editing or syncing."""


class NotFound(SyncdClientError):
    """No such entity in the local store."""


class ApiError(SyncdClientError):
    """The server refused a request (a 4xx or 5xx with the protocol's error body)."""

    def __init__(
        self, status: int, code: str, message: str = "", details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(f"{status} {code}: {message}" if message else f"{status} {code}")
        self.status = status
        self.code = code
        self.message = message
        self.details = details or {}


class AuthError(ApiError):
    """Authentication failed and a token refresh could not fix it (log in again)."""
