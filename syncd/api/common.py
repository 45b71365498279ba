"""What every route shares: body reading with limits, JSON/MessagePack negotiation,
the caller's identity, and turning SyncdError into the one error body."""

from __future__ import annotations

from typing import Any, TypeVar
from uuid import UUID

from starlette.requests import HTTPConnection, Request
from starlette.responses import Response

from syncd.errors import BadRequest, NotFound, PayloadTooLarge, SyncdError, Unauthorized
from syncd.limits import MAX_BODY_BYTES
from syncd.messages import MSGPACK, decode, encode
from syncd.services import Services
from syncd.types import Principal

T = TypeVar("T")


def services(conn: HTTPConnection) -> Services:
    svc: Services = conn.app.state.services
    return svc


def wants_msgpack(request: Request) -> bool:
    return MSGPACK in request.headers.get("accept", "") or (
        request.headers.get("content-type", "").startswith(MSGPACK)
        and "json" not in request.headers.get("accept", ""))


async def _read(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"request body over {limit} bytes", {"limit": limit})
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body over {limit} bytes", {"limit": limit})
        chunks.append(chunk)
    return b"".join(chunks)


def _is_msgpack(request: Request) -> bool:
    return request.headers.get("content-type", "").startswith(MSGPACK)


async def read_body(request: Request, typ: type[T], limit: int = MAX_BODY_BYTES) -> T:
    return decode(await _read(request, limit), typ, msgpack=_is_msgpack(request))


async def read_optional(request: Request, typ: type[T], limit: int) -> T | None:
    """The body decoded as `typ`, or None when there is none."""
    body = await _read(request, limit)
    return decode(body, typ, msgpack=_is_msgpack(request)) if body else None


def respond(request: Request, obj: Any, status: int = 200,
            headers: dict[str, str] | None = None) -> Response:
    msgpack = wants_msgpack(request)
    return Response(encode(obj, msgpack), status,
                    media_type=MSGPACK if msgpack else "application/json", headers=headers)


def error_response(exc: SyncdError) -> Response:
    headers = {}
    if exc.status == 429 and "retry_after" in exc.details:
        headers["Retry-After"] = str(exc.details["retry_after"])
    if exc.status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    if exc.status == 413:
        headers["Connection"] = "close"  # the rest of the body is drained, not parsed
    return Response(encode(exc.body()), exc.status, media_type="application/json",
                    headers=headers)


def bearer(conn: HTTPConnection) -> str | None:
    """The Authorization header's token. A URL ends up in logs and browser history, so
    `?token=` is only for the sockets (browsers cannot set their headers) and refused here."""
    header = conn.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token:
        return token.strip()
    if "token" in conn.query_params:
        raise Unauthorized("send the access token in the Authorization header; ?token= is "
                           "for WebSockets only", code="token_in_query")
    return None


async def principal(conn: HTTPConnection) -> Principal:
    """The caller, authenticated once per request however many handlers ask."""
    known: Principal | None = getattr(conn.state, "authenticated", None)
    if known is not None:
        return known
    who = await services(conn).auth.authenticate(bearer(conn))
    conn.state.principal = conn.state.authenticated = who
    return who


def path_uuid(request: Request, name: str) -> UUID:
    try:
        return UUID(request.path_params[name])
    except ValueError:
        raise NotFound(f"{name} is not a valid id") from None


def query_int(request: Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"{name} must be an integer", {"param": name},
                         code="invalid_request") from None
    if not lo <= value <= hi:
        raise BadRequest(f"{name} must be from {lo} to {hi}", {"param": name},
                         code="invalid_request")
    return value
