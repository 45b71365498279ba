"""The REST resource shape notes and projects share: list, create, read, patch, delete,
restore, with ETags from the entity's version and `If-Match` on every write.

Every write is a set of ops on the log (syncd/edits.py), so it reaches every device.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal
from uuid import UUID, uuid4

import msgspec
from psycopg.types.json import Jsonb
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from syncd import edits, history, queries
from syncd.api.common import (
    path_uuid,
    principal,
    query_int,
    read_body,
    read_optional,
    respond,
    services,
)
from syncd.errors import BadRequest
from syncd.fields import meta_fields
from syncd.limits import MAX_LIST_LIMIT
from syncd.merge import Entity
from syncd.messages import Empty, Op, Str, too_deep
from syncd.openapi import describe
from syncd.queries import SORTS, Page

Filters = Callable[[Request, Page], None]


@dataclass(frozen=True)
class Changes:
    """What a POST or PATCH asks for."""

    fields: dict[str, Any]
    text: str | None
    deleted: bool | None
    id: UUID | None
    base_version: int | None


Flag = Literal["true", "false", "1", "0"]
Deleted = Literal["true", "false", "1", "0", "all"]
Sort = Literal["updated", "created", "title"]
Order = Literal["asc", "desc"]
Limit = Annotated[int, msgspec.Meta(ge=1, le=MAX_LIST_LIMIT)]
MAX_WRITE_BYTES = 1024 * 1024
IF_MATCH = {"If-Match": Str}
# The filters no list of parameters can name (meta_filters below).
META_FILTERS = ("`meta_key=k` keeps the entities whose meta holds the key k; "
                "`meta.<key>=<value>` (repeatable) those whose meta key is that value, read "
                "as JSON when it parses (`meta.done=true`, `meta.n=3`, `meta.s=\"3\"`) and "
                "as a string otherwise (`meta.color=red`).")


def query_bool(request: Request, name: str) -> bool | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    if raw in ("true", "1"):
        return True
    if raw in ("false", "0"):
        return False
    raise BadRequest(f"{name} must be true or false", {"param": name}, code="invalid_request")


def page_from(request: Request) -> Page:
    sort = request.query_params.get("sort", "updated")
    if sort not in SORTS:
        raise BadRequest(f"sort must be one of {', '.join(SORTS)}", {"param": "sort"},
                         code="invalid_request")
    order = request.query_params.get("order", "asc" if sort == "title" else "desc")
    if order not in ("asc", "desc"):
        raise BadRequest("order must be asc or desc", {"param": "order"}, code="invalid_request")
    return Page(sort, order, query_int(request, "limit", 50, 1, MAX_LIST_LIMIT),
                request.query_params.get("cursor"))


def deleted_filter(request: Request, page: Page, alias: str) -> None:
    """Live entities by default; `deleted=true` the deleted ones, `deleted=all` both."""
    if request.query_params.get("deleted") == "all":
        return
    page.filter(f"{alias}.deleted = %(deleted)s", deleted=bool(query_bool(request, "deleted")))


def meta_filters(request: Request, page: Page, alias: str) -> None:
    """`meta_key=k`: entities whose meta holds the key k; `meta.k=v`: whose meta key k is v
    (v read as JSON when it parses: `meta.done=true`, `meta.n=3`, `meta.s="3"`; else as a
    string: `meta.color=red`). Both are answered from the GIN index on notes.meta, which
    holds only notes with app values (schema.sql): each filter says `meta <> '{}'`, which
    it implies, so the planner may use that index."""
    key = request.query_params.get("meta_key")
    if key is not None:
        page.filter(f"{alias}.meta ? %(meta_key)s AND {alias}.meta <> '{{}}'", meta_key=key)
    for i, (name, raw) in enumerate(request.query_params.multi_items()):
        if name.startswith("meta.") and len(name) > len("meta."):
            try:
                value = msgspec.json.decode(raw)
            except msgspec.DecodeError:
                value = raw
            except RecursionError:
                raise too_deep() from None
            if _holds_nul(value):  # `"\u0000"` decodes to what PostgreSQL cannot hold
                raise BadRequest(f"{name} must not hold NUL characters", {"param": name},
                                 code="invalid_request")
            page.filter(f"{alias}.meta @> %(meta{i})s AND {alias}.meta <> '{{}}'",
                        **{f"meta{i}": Jsonb({name[len("meta."):]: value})})


def _holds_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_holds_nul(k) or _holds_nul(v) for k, v in value.items())
    return isinstance(value, list) and any(_holds_nul(v) for v in value)


def entity_response(request: Request, entity: dict[str, Any], status: int = 200) -> Response:
    headers = {"ETag": edits.etag(entity["version"])}
    if status == 201:
        headers["Location"] = f"{request.url.path.rstrip('/')}/{entity['id']}"
    return respond(request, entity, status, headers)


class Resource:
    """Handlers for one entity kind; `filters` adds the kind's list filters to a page;
    `entity` and `page` are the response structs of one entity and of a list's page."""

    def __init__(self, kind: str, filters: Filters, entity: type, page: type,
                 text_field: str | None = None) -> None:
        self.kind = kind
        self.filters = filters
        self.entity, self.page = entity, page
        self.text_field = text_field  # a plain-text field written as a CRDT diff

    async def _changes(self, request: Request, create: bool) -> Changes:
        """Split the JSON object of a POST or PATCH and validate its fields. A POST may
        name the `id`; a PATCH may set `deleted` and give a note's `base_version`; any
        other key is an unknown field (422), as the OpenAPI document says. None of these
        four may be null (absent means "unchanged")."""
        fields = await read_body(request, dict[str, Any], limit=MAX_WRITE_BYTES)
        own = {"id": create, self.text_field: bool(self.text_field), "deleted": not create,
               "base_version": bool(self.text_field) and not create}
        taken = {k: fields.pop(k) for k, allowed in own.items() if allowed and k in fields}
        raw_id, text = taken.get("id"), taken.get(self.text_field or "")
        deleted, base = taken.get("deleted"), taken.get("base_version")
        meta = fields.pop("meta", None)
        if meta is not None and not isinstance(meta, dict):
            raise edits.Unprocessable(f"{self.kind}.meta must be an object")
        fields.update(meta_fields(meta or {}))
        if "id" in taken and not isinstance(raw_id, str):
            raise edits.Unprocessable(f"{self.kind}.id must be a UUID")
        if self.text_field in taken and not isinstance(text, str):
            raise edits.Unprocessable(f"{self.kind}.{self.text_field} must be a string")
        if "deleted" in taken and not isinstance(deleted, bool):
            raise edits.Unprocessable(f"{self.kind}.deleted must be a boolean")
        if "base_version" in taken and (isinstance(base, bool) or not isinstance(base, int)):
            raise edits.Unprocessable("base_version must be an integer (an ETag's version)")
        try:
            id = UUID(raw_id) if raw_id is not None else None
        except ValueError:
            raise edits.Unprocessable(f"{self.kind}.id must be a UUID") from None
        return Changes(edits.check_fields(self.kind, fields), text, deleted, id, base)

    async def index(self, request: Request, within: UUID | None = None) -> Response:
        who = await principal(request)
        page = page_from(request)
        self.filters(request, page)
        return respond(request, await queries.listing(services(request).db, who, self.kind,
                                                      page, within))

    async def get(self, request: Request) -> Response:
        who = await principal(request)
        entity = await queries.read(services(request).db, who, self.kind, path_uuid(request, "id"))
        none_match = request.headers.get("if-none-match")
        if none_match and edits.etag_matches(none_match, entity["version"]):
            return Response(status_code=304, headers={"ETag": edits.etag(entity["version"])})
        return entity_response(request, entity)

    async def _write(self, request: Request, id: UUID,
                     build: Callable[[Entity | None], list[Op]], create: bool = False,
                     status: int = 200, owner: bool = False) -> Response:
        who = await principal(request)
        svc = services(request)
        entity = await edits.write(svc.db, svc.hub, who, self.kind, id, build, create=create,
                                   if_match=request.headers.get("if-match"), owner=owner)
        return entity_response(request, entity, status)

    async def create(self, request: Request) -> Response:
        await principal(request)
        c = await self._changes(request, create=True)
        id = c.id or uuid4()
        return await self._write(
            request, id, lambda cur: edits.change_ops(self.kind, id, cur, c.fields, c.text),
            create=True, status=201)

    async def patch(self, request: Request) -> Response:
        """`base_version` (notes): the version the client read; its body is then diffed
        from that version's document, so edits others made since are kept, not undone."""
        who = await principal(request)
        id = path_uuid(request, "id")
        c = await self._changes(request, create=False)
        base = None
        if c.text is not None and c.base_version is not None:
            base = await history.body_at_version(services(request).db, who, id, c.base_version)
        return await self._write(request, id, lambda cur: edits.change_ops(
            self.kind, id, cur, c.fields, c.text, c.deleted, base))

    async def delete(self, request: Request) -> Response:
        id = path_uuid(request, "id")
        return await self._write(
            request, id, lambda cur: edits.change_ops(self.kind, id, cur, {}, deleted=True),
            owner=self.kind == "project")

    async def restore(self, request: Request) -> Response:
        """The body, if any, is an empty JSON object: the path says everything."""
        id = path_uuid(request, "id")
        await read_optional(request, Empty, limit=1024)
        return await self._write(
            request, id, lambda cur: edits.change_ops(self.kind, id, cur, {}, deleted=False),
            owner=self.kind == "project")

    def describe(self, create: type, patch: type, filters: dict[str, Any]) -> None:
        """The routes' entries in the OpenAPI document: `create` and `patch` are the
        closed shapes of the POST and PATCH bodies, `filters` the list's own parameters."""
        base, kind = f"/v1/{self.kind}s", self.kind
        page = {"sort": Sort, "order": Order, "limit": Limit, "cursor": Str}
        describe(base, "GET", summary=f"A page of the {kind}s the caller can see",
                 query={**filters, "deleted": Deleted, **page}, description=META_FILTERS,
                 response=self.page)
        describe(base, "POST", request=create, response=self.entity, status=201, errors=(409, 422),
                 summary=f"Create a {kind} (through the log, like a device push)")
        describe(base + "/{id}", "GET", response=self.entity, headers={"If-None-Match": Str},
                 summary=f"One {kind}; ETag is its version")
        describe(base + "/{id}", "PATCH", request=patch, response=self.entity, headers=IF_MATCH,
                 errors=(412, 422),
                 summary=f"Change a {kind}'s fields (If-Match honoured)")
        describe(base + "/{id}", "DELETE", response=self.entity, headers=IF_MATCH, errors=(412,),
                 summary=f"Delete a {kind} (restorable)")
        describe(base + "/{id}/restore", "POST", request=Empty, response=self.entity,
                 body_required=False,
                 headers=IF_MATCH, errors=(412,), summary=f"Restore a deleted {kind}")

    def routes(self) -> list[Route]:
        base = f"/v1/{self.kind}s"
        return [
            Route(base, self.index, methods=["GET"]),
            Route(base, self.create, methods=["POST"]),
            Route(base + "/{id}", self.get, methods=["GET"]),
            Route(base + "/{id}", self.patch, methods=["PATCH"]),
            Route(base + "/{id}", self.delete, methods=["DELETE"]),
            Route(base + "/{id}/restore", self.restore, methods=["POST"]),
        ]
