"""Bearer tokens from the store, refreshed with rotation when the server says 401.

Refresh tokens rotate and reusing a rotated one revokes the device, so two
threads must never refresh with the same token: refreshing happens under a
lock, and a thread that finds the access token already replaced by another
thread just retries with the new one.
"""

from __future__ import annotations

import threading
from collections.abc import Generator

import httpx
import msgspec

from syncd_client.messages import TokenResponse
from syncd_client.store import Store

REFRESH_PATH = "/v1/auth/refresh"
NO_AUTH = httpx.Auth()  # the base class adds nothing: for calls made without a token


def store_tokens(store: Store, tokens: TokenResponse) -> None:
    with store.transaction():
        store.set("access_token", tokens.access_token)
        store.set("refresh_token", tokens.refresh_token)


class TokenAuth(httpx.Auth):
    """httpx auth flow: add the access token; on 401 refresh once and retry once."""

    requires_response_body = True

    def __init__(self, store: Store, refresh_url: str) -> None:
        self.store = store
        self.refresh_url = refresh_url
        self._lock = threading.Lock()

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        used = self.store.get("access_token")
        if used:
            request.headers["Authorization"] = f"Bearer {used}"
        response = yield request
        if response.status_code != 401 or not self.store.get("refresh_token"):
            return
        with self._lock:
            if self.store.get("access_token") == used:
                refresh = httpx.Request(
                    "POST",
                    self.refresh_url,
                    json={"refresh_token": self.store.get("refresh_token")},
                )
                answer = yield refresh
                if answer.status_code != 200:
                    return  # the caller sees the refusal and raises AuthError
                store_tokens(self.store, msgspec.json.decode(answer.content, type=TokenResponse))
        request.headers["Authorization"] = f"Bearer {self.store.get('access_token')}"
        yield request

    def refresh_if_stale(self, client: httpx.Client, used: str | None) -> bool:
        """Refresh outside a request (a socket refused `used`); False if that failed."""
        with self._lock:
            if self.store.get("access_token") != used:
                return True
            token = self.store.get("refresh_token")
            if not token:
                return False
            answer = client.post(self.refresh_url, json={"refresh_token": token}, auth=NO_AUTH)
            if answer.status_code != 200:
                return False
            store_tokens(self.store, msgspec.json.decode(answer.content, type=TokenResponse))
            return True
