"""/v1/projects/{id}/members: sharing a project, by its owner."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from syncd import sharing
from syncd.api.common import path_uuid, principal, read_body, respond, services
from syncd.messages import MemberRequest
from syncd.openapi import describe
from syncd.responses import Added, Members


async def list_members(request: Request) -> Response:
    who = await principal(request)
    rows = await sharing.list_members(services(request).db, who, path_uuid(request, "id"))
    return respond(request, {"members": rows})


async def add_member(request: Request) -> Response:
    who = await principal(request)
    project = path_uuid(request, "id")
    body = await read_body(request, MemberRequest, limit=64 * 1024)
    svc = services(request)
    result = await sharing.add_member(svc.db, svc.hub, who, project, body.email, body.role)
    return respond(request, result, 201)


async def remove_member(request: Request) -> Response:
    who = await principal(request)
    svc = services(request)
    await sharing.remove_member(svc.db, svc.hub, who, path_uuid(request, "id"),
                                path_uuid(request, "user_id"))
    return Response(status_code=204)


describe("/v1/projects/{id}/members", "GET", response=Members, summary="A project's members")
describe("/v1/projects/{id}/members", "POST", request=MemberRequest, response=Added,
         status=201, errors=(409,),
         summary="Share a project (owner only)")
describe("/v1/projects/{id}/members/{user_id}", "DELETE", status=204, errors=(409,),
         summary="Remove a member (owner only)")

routes = [
    Route("/v1/projects/{id}/members", list_members, methods=["GET"]),
    Route("/v1/projects/{id}/members", add_member, methods=["POST"]),
    Route("/v1/projects/{id}/members/{user_id}", remove_member, methods=["DELETE"]),
]
