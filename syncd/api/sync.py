"""/v1/sync: push, pull, snapshot, status."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from syncd import sync
from syncd.api.common import principal, query_int, read_body, respond, services
from syncd.config import DEFAULT_PULL_LIMIT, MAX_PULL_LIMIT
from syncd.messages import PushRequest


async def push(request: Request) -> Response:
    who = await principal(request)
    body = await read_body(request, PushRequest)
    svc = services(request)
    response = await sync.push(svc.db, svc.hub, who, body.ops)
    svc.metrics.count_push(response.results)
    return respond(request, response)


async def pull(request: Request) -> Response:
    who = await principal(request)
    cursor = query_int(request, "cursor", 0, 0, 2**62)
    limit = query_int(request, "limit", DEFAULT_PULL_LIMIT, 1, MAX_PULL_LIMIT)
    return respond(request, await sync.pull(services(request).db, who, cursor, limit))


async def snapshot(request: Request) -> Response:
    who = await principal(request)
    return respond(request, await sync.snapshot(services(request).db, who))


async def status(request: Request) -> Response:
    who = await principal(request)
    return respond(request, await sync.status(services(request).db, who))


routes = [
    Route("/v1/sync/push", push, methods=["POST"]),
    Route("/v1/sync/pull", pull, methods=["GET"]),
    Route("/v1/sync/snapshot", snapshot, methods=["GET"]),
    Route("/v1/sync/status", status, methods=["GET"]),
]
