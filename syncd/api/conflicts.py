"""/v1/conflicts: the user's recorded conflicts, and settling one."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from syncd import conflicts
from syncd.api.common import path_uuid, principal, query_int, read_body, respond, services
from syncd.errors import BadRequest
from syncd.openapi import describe
from syncd.responses import Conflicts, ConflictView

STATUSES: dict[str, conflicts.Status] = {"open": "open", "resolved": "resolved", "all": "all"}


async def list_conflicts(request: Request) -> Response:
    who = await principal(request)
    status = request.query_params.get("status", "open")
    if status not in STATUSES:
        raise BadRequest("status must be open, resolved or all", {"param": "status"},
                         code="invalid_request")
    limit = query_int(request, "limit", 200, 1, 1000)
    rows = await conflicts.list_conflicts(services(request).db, who, STATUSES[status], limit)
    return respond(request, {"conflicts": rows})


async def resolve(request: Request) -> Response:
    who = await principal(request)
    body = await read_body(request, conflicts.ResolveRequest, limit=256 * 1024)
    svc = services(request)
    row = await conflicts.resolve(svc.db, svc.hub, who, path_uuid(request, "id"), body.choose)
    return respond(request, row)


describe("/v1/conflicts", "GET", response=Conflicts,
         summary="The user's conflicts (open by default)",
         query={"status": Literal["open", "resolved", "all"],
                "limit": Annotated[int, msgspec.Meta(ge=1, le=1000)]})
describe("/v1/conflicts/{id}/resolve", "POST", request=conflicts.ResolveRequest,
         response=ConflictView, errors=(409,),
         summary="Settle a conflict: mine, theirs, or a value")

routes = [
    Route("/v1/conflicts", list_conflicts, methods=["GET"]),
    Route("/v1/conflicts/{id}/resolve", resolve, methods=["POST"]),
]
