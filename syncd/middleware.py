"""The request middleware: request id, early body-size refusal, per-user request budgets
(and the `X-RateLimit-*` headers of whatever rate limit a request counted against),
metrics by route template, and one structured JSON log line per request.

The log line holds method, route template, status, duration, request id and user id. No
raw path or query string (a WebSocket's `?token=` lives there), no headers, no bodies: so
no passwords, tokens or note content ever reach the logs (syncd/logs.py redacts what other
libraries log).
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from urllib.parse import unquote_to_bytes

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from syncd.errors import BadRequest, PayloadTooLarge, SyncdError
from syncd.limits import MAX_BODY_BYTES
from syncd.messages import encode
from syncd.metrics import Metrics
from syncd.ratelimit import QUOTAS, Limiter, Quota, tightest

access_log = logging.getLogger("syncd.access")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
# Operational endpoints are neither budgeted nor worth a latency series per scrape.
_UNBUDGETED = ("/health", "/metrics")


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return str(value.decode("latin-1"))
    return None


def route_template(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return str(path) if path else "<unmatched>"


class RequestContext:
    def __init__(self, app: ASGIApp, metrics: Metrics, limiter: Limiter,
                 max_body: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.metrics = metrics
        self.limiter = limiter
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        given = _header(scope, b"x-request-id")
        rid = given if given and _REQUEST_ID.match(given) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = rid
        user = scope["state"]["user_id"] = self._user(scope)
        status = 500
        quotas: list[Quota] = []
        noting = QUOTAS.set(quotas)

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                quota = tightest(quotas)
                message["headers"] = [*message.get("headers", []),
                                      (b"x-request-id", rid.encode()),
                                      *(quota.headers() if quota else ())]
            await send(message)

        try:
            refusal = await self._refuse(scope, user)
            if refusal is not None:
                await self._error(refusal, send_with_id)
            else:
                await self.app(scope, receive, send_with_id)
        finally:
            QUOTAS.reset(noting)
            elapsed = time.perf_counter() - start
            route = route_template(scope)
            method = scope["method"]
            self.metrics.requests.labels(method, route, str(status)).inc()
            if scope["path"] not in _UNBUDGETED:
                self.metrics.latency.labels(method, route).observe(elapsed)
            access_log.info("%s %s %s", method, route, status, extra={"fields": {
                "request_id": rid, "method": method, "route": route, "status": status,
                "duration_ms": round(elapsed * 1000, 2), "user_id": user}})

    def _user(self, scope: Scope) -> str | None:
        """The user an access token names (signature and expiry checked; no database)."""
        header = _header(scope, b"authorization") or ""
        scheme, _, token = header.partition(" ")
        services = getattr(scope["app"].state, "services", None)
        if scheme.lower() != "bearer" or not token or services is None:
            return None
        try:
            return str(services.auth.decode(token.strip()).user_id)
        except SyncdError:
            return None

    async def _refuse(self, scope: Scope, user: str | None) -> SyncdError | None:
        # One check here covers every query parameter of every route: PostgreSQL stores no
        # NUL in text (a NUL cannot arrive raw in a request line, only percent-encoded),
        # and bytes that are not UTF-8 would reach the handlers as U+FFFD.
        query = scope.get("query_string", b"")
        if b"%00" in query:
            return BadRequest("the query string must not contain NUL characters",
                              code="invalid_request")
        try:
            unquote_to_bytes(query.replace(b"+", b" ")).decode()
        except UnicodeDecodeError:
            return BadRequest("the query string is not UTF-8", code="invalid_request")
        declared = _header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body:
            return PayloadTooLarge(f"request body over {self.max_body} bytes",
                                   {"limit": self.max_body})
        if user is not None and scope["path"] not in _UNBUDGETED:
            try:
                await self.limiter.hit("user", user, self.limiter.settings.rate_user)
            except SyncdError as e:
                self.metrics.rate_limited.labels("user").inc()
                return e
        return None

    async def _error(self, exc: SyncdError, send: Send) -> None:
        headers = [(b"content-type", b"application/json")]
        if "retry_after" in exc.details:
            headers.append((b"retry-after", str(exc.details["retry_after"]).encode()))
        if exc.status == 413:
            headers.append((b"connection", b"close"))  # do not read the oversized body
        body = encode(exc.body())
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": exc.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
