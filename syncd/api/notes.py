"""/v1/notes: the REST view of notes, and /v1/projects/{id}/notes.

List filters: `project` (an id, or `none`), `tag` (repeatable, all must match), `pinned`,
`favorite`, `meta_key` and `meta.<key>=<value>` (resource.meta_filters), `deleted`
(`false` by default, `true`, or `all`); `sort` updated | created |
title, `order` asc | desc, `limit` ≤ 200, `cursor` from the previous page's `next_cursor`.
A `body` in POST or PATCH is plain text, written as a CRDT diff of the stored document;
`meta` is a map of the keys to set (null clears one).
"""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

import msgspec
from msgspec import UNSET, UnsetType
from psycopg.types.json import Jsonb
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from syncd.api.common import path_uuid
from syncd.api.resource import (
    META_FILTERS,
    Deleted,
    Flag,
    Limit,
    Order,
    Resource,
    Sort,
    deleted_filter,
    meta_filters,
    query_bool,
)
from syncd.errors import BadRequest
from syncd.limits import MAX_TAG, MAX_TAGS, MAX_TITLE
from syncd.messages import NO_NUL, UUID_PATTERN, Str
from syncd.openapi import describe
from syncd.queries import Page
from syncd.responses import Note, NotePage


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
    if len(tags) > MAX_TAGS or any(len(t) > MAX_TAG for t in tags):
        raise BadRequest(f"at most {MAX_TAGS} tags of at most {MAX_TAG} characters",
                         {"param": "tag"}, code="invalid_request")
    if tags:
        page.filter("n.tags @> %(tags)s", tags=Jsonb(tags))
    for flag in ("pinned", "favorite"):
        value = query_bool(request, flag)
        if value is not None:
            page.filter(f"n.{flag} = %({flag})s", **{flag: value})
    meta_filters(request, page, "n")
    deleted_filter(request, page, "n")


Title = Annotated[str, msgspec.Meta(max_length=MAX_TITLE, pattern=NO_NUL)]
Tag = Annotated[str, msgspec.Meta(max_length=MAX_TAG, pattern=NO_NUL)]
Tags = Annotated[list[Tag], msgspec.Meta(max_length=MAX_TAGS)]  # in a body or a query
ProjectRef = Annotated[str, msgspec.Meta(pattern=f"^(none|{UUID_PATTERN})$")]


class NoteCreate(msgspec.Struct, forbid_unknown_fields=True):
    """The body of POST /v1/notes (documentation: fields.validate checks it)."""

    id: UUID | UnsetType = UNSET
    title: Title | UnsetType = UNSET
    tags: Tags | UnsetType = UNSET
    pinned: bool | UnsetType = UNSET
    favorite: bool | UnsetType = UNSET
    project_id: UUID | UnsetType | None = UNSET
    body: Annotated[str, msgspec.Meta(pattern=NO_NUL)] | UnsetType = UNSET
    meta: dict[str, Any] | UnsetType = UNSET


class NotePatch(msgspec.Struct, forbid_unknown_fields=True):
    """The body of PATCH /v1/notes/{id}: `base_version` is the version the body was read at."""

    title: Title | UnsetType = UNSET
    tags: Tags | UnsetType = UNSET
    pinned: bool | UnsetType = UNSET
    favorite: bool | UnsetType = UNSET
    project_id: UUID | UnsetType | None = UNSET
    body: Annotated[str, msgspec.Meta(pattern=NO_NUL)] | UnsetType = UNSET
    deleted: bool | UnsetType = UNSET
    base_version: Annotated[int, msgspec.Meta(ge=1)] | UnsetType = UNSET
    meta: dict[str, Any] | UnsetType = UNSET


notes = Resource("note", note_filters, Note, NotePage, text_field="body")
notes.describe(NoteCreate, NotePatch, {"project": ProjectRef, "tag": Tags, "meta_key": Str,
                                       "pinned": Flag, "favorite": Flag})


async def project_notes(request: Request) -> Response:
    return await notes.index(request, within=path_uuid(request, "id"))


describe("/v1/projects/{id}/notes", "GET", response=NotePage,
         summary="A page of a project's notes",
         query={"project": ProjectRef, "tag": Tags, "meta_key": Str, "pinned": Flag,
                "favorite": Flag, "deleted": Deleted, "sort": Sort, "order": Order,
                "limit": Limit, "cursor": Str},
         description=META_FILTERS + " The list filters of GET /v1/notes apply within the "
                                    "project (`project` too, so it can only narrow).")

routes = [
    *notes.routes(),
    Route("/v1/projects/{id}/notes", project_notes, methods=["GET"]),
]
