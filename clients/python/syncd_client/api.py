"""Typed calls to the syncd HTTP API (docs/protocol.md), one method per endpoint used.

Every refusal becomes an `ApiError` carrying the status and the protocol's
machine `code` (`AuthError` for a 401 that a token refresh did not cure).
"""

from __future__ import annotations

from typing import Any, TypeVar

import httpx
import msgspec

from syncd_client.auth import NO_AUTH, REFRESH_PATH, TokenAuth
from syncd_client.errors import ApiError, AuthError
from syncd_client.messages import (
    ErrorBody,
    LoginResponse,
    PullResponse,
    PushResponse,
    RegisterResponse,
    SnapshotResponse,
    User,
)
from syncd_client.store import Store
from syncd_client.types import Json

T = TypeVar("T")

_error_decoder = msgspec.json.Decoder(dict[str, ErrorBody])


def raise_for_error(response: httpx.Response) -> None:
    if response.is_success:
        return
    try:
        body = _error_decoder.decode(response.content)["error"]
        code, message, details = body.code, body.message, body.details
    except (msgspec.DecodeError, msgspec.ValidationError, KeyError):
        code, message, details = f"http_{response.status_code}", response.text[:200], None
    cls = AuthError if response.status_code == 401 else ApiError
    raise cls(response.status_code, code, message, details)


class Api:
    """An httpx.Client on the server's base URL, authenticated from the store."""

    def __init__(self, base_url: str, store: Store, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.auth = TokenAuth(store, self.base_url + REFRESH_PATH)
        self.http = httpx.Client(base_url=self.base_url, auth=self.auth, timeout=timeout)

    def close(self) -> None:
        self.http.close()

    def _call(self, method: str, path: str, type: type[T], **kw: Any) -> T:
        response = self.http.request(method, path, **kw)
        raise_for_error(response)
        return msgspec.json.decode(response.content, type=type)

    def register(self, email: str, password: str, name: str | None) -> User:
        body: Json = {"email": email, "password": password}
        if name is not None:
            body["name"] = name
        return self._call(
            "POST", "/v1/auth/register", RegisterResponse, json=body, auth=NO_AUTH
        ).user

    def login(self, email: str, password: str, device_name: str, platform: str) -> LoginResponse:
        body = {
            "email": email,
            "password": password,
            "device": {"name": device_name, "platform": platform},
        }
        return self._call("POST", "/v1/auth/login", LoginResponse, json=body, auth=NO_AUTH)

    def logout(self) -> None:
        raise_for_error(self.http.post("/v1/auth/logout"))

    def me(self) -> Json:
        return self._call("GET", "/v1/auth/me", Json)

    def push(self, ops: list[Json]) -> PushResponse:
        return self._call("POST", "/v1/sync/push", PushResponse, json={"ops": ops})

    def pull(self, cursor: int, limit: int = 500) -> PullResponse:
        params = {"cursor": cursor, "limit": limit}
        return self._call("GET", "/v1/sync/pull", PullResponse, params=params)

    def snapshot(self) -> SnapshotResponse:
        return self._call("GET", "/v1/sync/snapshot", SnapshotResponse)

    def status(self) -> Json:
        return self._call("GET", "/v1/sync/status", Json)
