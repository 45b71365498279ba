"""/v1/notes: the REST view of notes, and /v1/projects/{id}/notes.

List filters: `project` (an id, or `none`), `tag` (repeatable, all must match), `pinned`,
`favorite`, `meta_key` and `meta.<key>=<value>` (resource.meta_filters), `deleted`
(`false` by default, `true`, or `all`); `sort` updated | created |
title, `order` asc | desc, `limit` ≤ 200, `cursor` from the previous page's `next_cursor`.
A `body` in POST or PATCH is plain text, written as a CRDT diff of the stored document;
`meta` is a map of the keys to set (null clears one).
"""

from __future__ import annotations

from uuid import UUID

from psycopg.types.json import Jsonb
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from syncd.api.common import path_uuid
from syncd.api.resource import Resource, deleted_filter, meta_filters, query_bool
from syncd.errors import BadRequest
from syncd.queries import Page


def note_filters(request: Request, page: Page) -> None:
    params = request.query_params
    project = params.get("project")
    if project == "none":
        page.filter("n.project_id IS NULL")
    elif project is not None:
        try:
            page.filter("n.project_id = %(project)s", project=UUID(project))
        except ValueError:
            raise BadRequest("project must be a project id or none", {"param": "project"},
                             code="invalid_request") from None
    tags = params.getlist("tag")
    if tags:
        page.filter("n.tags @> %(tags)s", tags=Jsonb(tags))
    for flag in ("pinned", "favorite"):
        value = query_bool(request, flag)
        if value is not None:
            page.filter(f"n.{flag} = %({flag})s", **{flag: value})
    meta_filters(request, page, "n")
    deleted_filter(request, page, "n")


notes = Resource("note", note_filters, text_field="body")


async def project_notes(request: Request) -> Response:
    return await notes.index(request, within=path_uuid(request, "id"))


routes = [
    *notes.routes(),
    Route("/v1/projects/{id}/notes", project_notes, methods=["GET"]),
]
