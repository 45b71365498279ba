"""/v1/{notes,projects}/{id}/history, /at and /revert: the log as version history.

`history?cursor=&limit=` pages the entity's events in the caller's log by op id (oldest
first; `cursor` is the last page's `cursor`). `at?seq=N` or `at?at=<ISO time>` is the
entity rebuilt from the caller's log up to that point; `revert {seq}` or `{at}` writes
new ops that make the current state equal to it (If-Match honoured).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated
from uuid import UUID

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from syncd import history
from syncd.api.common import path_uuid, principal, query_int, read_body, respond, services
from syncd.api.resource import entity_response
from syncd.errors import BadRequest
from syncd.limits import MAX_CURSOR, MAX_HISTORY_PAGE
from syncd.messages import Str
from syncd.openapi import describe
from syncd.responses import HistoryPage, Note, PastNote, PastProject, Project

Seq = Annotated[int, msgspec.Meta(ge=0, le=MAX_CURSOR)]


class RevertRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    seq: Seq | None = None
    at: datetime | None = None


def _point(seq: int | None, at: datetime | str | None) -> tuple[int | None, datetime | None]:
    """Exactly one of seq and at, the time made timezone-aware (UTC when it names none)."""
    if (seq is None) == (at is None):
        raise BadRequest("give either seq or at", code="invalid_request")
    if seq is not None and seq < 0:
        raise BadRequest("seq must be ≥ 0", {"param": "seq"}, code="invalid_request")
    if isinstance(at, str):
        try:
            at = datetime.fromisoformat(at)
        except ValueError:
            raise BadRequest("at must be an ISO 8601 time", {"param": "at"},
                             code="invalid_request") from None
    if at is not None and at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return seq, at


def kind_of(request: Request) -> str:
    return "note" if request.url.path.startswith("/v1/notes/") else "project"


async def get_history(request: Request) -> Response:
    who = await principal(request)
    after = query_int(request, "cursor", 0, 0, MAX_CURSOR)
    limit = query_int(request, "limit", 50, 1, MAX_HISTORY_PAGE)
    page = await history.history(services(request).db, who, kind_of(request),
                                 path_uuid(request, "id"), after, limit)
    return respond(request, page)


async def get_at(request: Request) -> Response:
    who = await principal(request)
    raw_seq = request.query_params.get("seq")
    seq = query_int(request, "seq", 0, 0, MAX_CURSOR) if raw_seq is not None else None
    seq, at = _point(seq, request.query_params.get("at"))
    ent, n = await history.past(services(request).db, who, kind_of(request),
                                path_uuid(request, "id"), seq, at)
    return respond(request, history.past_view(ent, n))


async def revert(request: Request) -> Response:
    who = await principal(request)
    body = await read_body(request, RevertRequest, limit=4096)
    seq, at = _point(body.seq, body.at)
    svc = services(request)
    id: UUID = path_uuid(request, "id")
    entity = await history.revert(svc.db, svc.hub, who, kind_of(request), id, seq, at,
                                  request.headers.get("if-match"))
    return entity_response(request, entity)


for _base, _kind, _now, _then in (("/v1/notes/{id}", "note", Note, PastNote),
                                  ("/v1/projects/{id}", "project", Project, PastProject)):
    describe(_base + "/history", "GET", response=HistoryPage,
             summary=f"A {_kind}'s events in the caller's log",
             query={"cursor": Seq, "limit": Annotated[int, msgspec.Meta(ge=1,
                                                                         le=MAX_HISTORY_PAGE)]})
    describe(_base + "/at", "GET", response=_then,
             summary=f"A {_kind} as of a seq or a time (give one)",
             query={"seq": Seq, "at": Str})
    describe(_base + "/revert", "POST", request=RevertRequest, response=_now,
             headers={"If-Match": Str}, errors=(412, 422),
             summary=f"Make a {_kind} as it was at a seq or a time")

routes = [
    route
    for base in ("/v1/notes/{id}", "/v1/projects/{id}")
    for route in (
        Route(base + "/history", get_history, methods=["GET"]),
        Route(base + "/at", get_at, methods=["GET"]),
        Route(base + "/revert", revert, methods=["POST"]),
    )
]
