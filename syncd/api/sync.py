"""/v1/sync: push, pull, snapshot, status."""

from __future__ import annotations

from typing import Annotated

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from syncd import sync
from syncd.api.common import bearer, principal, query_int, read_body, respond, services
from syncd.limits import DEFAULT_PULL_LIMIT, MAX_CURSOR, MAX_PULL_LIMIT
from syncd.messages import PullResponse, PushRequest, PushResponse
from syncd.openapi import describe
from syncd.responses import Snapshot, SyncStatus


async def push(request: Request) -> Response:
    svc = services(request)
    # The push transaction locks the device row and refuses a revoked device itself, so
    # the token is only decoded here: one round trip fewer on the hottest path.
    who = svc.auth.decode(bearer(request) or "")
    request.state.principal = who
    body = await read_body(request, PushRequest)
    response = await sync.push(svc.db, svc.hub, who, body.ops)
    svc.metrics.count_push(response.results)
    return respond(request, response)


async def pull(request: Request) -> Response:
    who = await principal(request)
    cursor = query_int(request, "cursor", 0, 0, MAX_CURSOR)
    limit = query_int(request, "limit", DEFAULT_PULL_LIMIT, 1, MAX_PULL_LIMIT)
    return respond(request, await sync.pull(services(request).db, who, cursor, limit))


async def snapshot(request: Request) -> Response:
    who = await principal(request)
    return respond(request, await sync.snapshot(services(request).db, who))


async def status(request: Request) -> Response:
    who = await principal(request)
    return respond(request, await sync.status(services(request).db, who))


describe("/v1/sync/push", "POST", request=PushRequest, response=PushResponse, errors=(409,),
         summary="Push a batch of ops (exactly once, atomic)")
describe("/v1/sync/pull", "GET", response=PullResponse,
         query={"cursor": Annotated[int, msgspec.Meta(ge=0, le=MAX_CURSOR)],
                "limit": Annotated[int, msgspec.Meta(ge=1, le=MAX_PULL_LIMIT)]},
         summary="Events after a cursor, in order")
describe("/v1/sync/snapshot", "GET", response=Snapshot,
         summary="Everything the caller can see, as of a cursor")
describe("/v1/sync/status", "GET", response=SyncStatus,
         summary="Log head, this device's acked, the devices")

routes = [
    Route("/v1/sync/push", push, methods=["POST"]),
    Route("/v1/sync/pull", pull, methods=["GET"]),
    Route("/v1/sync/snapshot", snapshot, methods=["GET"]),
    Route("/v1/sync/status", status, methods=["GET"]),
]
