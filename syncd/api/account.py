"""The account's own data: profile (PATCH /v1/auth/me), writing stats, export, deletion."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

import msgspec
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from syncd import erase
from syncd.api.common import principal, read_body, respond, services
from syncd.db import Conn
from syncd.errors import BadRequest
from syncd.export import export_stream
from syncd.messages import Name, Str
from syncd.openapi import describe
from syncd.responses import Export, Me
from syncd.stats import DAYS, stats, valid_timezone


class MeUpdate(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    timezone: Str | None = None
    name: Name | None = None


class DeleteAccount(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    password: Str


class DayWords(msgspec.Struct):
    date: str
    words: int


class Streak(msgspec.Struct):
    current: int
    longest: int


class ProjectCounts(msgspec.Struct):
    active: int
    completed: int
    archived: int


class Milestone(msgspec.Struct):
    project_id: UUID
    milestone: int | None
    seq: int
    at: str


class Milestones(msgspec.Struct):
    reached: int
    items: list[Milestone]


class Stats(msgspec.Struct, rename={"from_": "from"}):
    period: str
    timezone: str
    from_: str
    to: str
    days: list[DayWords]
    total_words: int
    streak: Streak
    projects: ProjectCounts
    milestones: Milestones


async def update_me(request: Request) -> Response:
    who = await principal(request)
    body = await read_body(request, MeUpdate, limit=64 * 1024)
    if body.timezone is not None and not valid_timezone(body.timezone):
        raise BadRequest("timezone must be an IANA time zone such as Europe/Paris",
                         {"field": "timezone"}, code="validation")
    svc = services(request)

    async def tx(conn: Conn) -> None:
        await conn.execute(
            """UPDATE users SET timezone = coalesce(%s, timezone), name = coalesce(%s, name)
               WHERE id = %s""", (body.timezone, body.name, who.user_id))

    await svc.db.run(tx)
    return respond(request, await svc.auth.me(who))


async def get_stats(request: Request) -> Response:
    who = await principal(request)
    period = request.query_params.get("period", "week")
    if period not in (*DAYS, "all"):
        raise BadRequest("period must be week, month, year or all", {"param": "period"},
                         code="invalid_request")
    return respond(request, await stats(services(request).db, who, period))  # type: ignore[arg-type]


async def export(request: Request) -> Response:
    who = await principal(request)
    stamp = datetime.now().strftime("%Y%m%d")
    return StreamingResponse(
        export_stream(services(request).db, who.user_id), media_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="syncd-export-{stamp}.json"',
                 "Cache-Control": "no-store"})


async def delete_account(request: Request) -> Response:
    who = await principal(request)
    body = await read_body(request, DeleteAccount, limit=64 * 1024)
    svc = services(request)
    await erase.check_password(svc.db, who, body.password)
    for device in await erase.delete_account(svc.db, svc.hub, who.user_id):
        svc.hub.close_device(device, "account deleted")
    return Response(status_code=204)


Period = Literal["week", "month", "year", "all"]
describe("/v1/auth/me", "PATCH", request=MeUpdate, response=Me,
         summary="Set the caller's time zone (IANA) and name")
describe("/v1/stats", "GET", response=Stats, query={"period": Period},
         summary="Words written per day, streaks, projects and milestones")
describe("/v1/export", "GET", response=Export,
         summary="Everything the caller owns, as one streamed JSON document")
describe("/v1/account", "DELETE", request=DeleteAccount, status=204,
         summary="Delete the account and everything it owns (needs the password)")

routes = [
    Route("/v1/auth/me", update_me, methods=["PATCH"]),
    Route("/v1/stats", get_stats, methods=["GET"]),
    Route("/v1/export", export, methods=["GET"]),
    Route("/v1/account", delete_account, methods=["DELETE"]),
]

