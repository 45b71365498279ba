"""Write side of the REST views: requests become ops on the same log as device pushes.

A REST write locks the entity, checks `If-Match` against its version, builds its ops
from the locked state, and applies them through the push path (plan → merge → log →
projection) in one transaction, so the precondition and the write cannot race. A
refused op refuses the whole request: nothing of it is written.

A new body is sent as a minimal CRDT diff against the stored document (common prefix
and suffix kept, the middle deleted and inserted), never as a replacement, so it merges
with whatever other editors typed concurrently.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import UUID

from pycrdt import Doc, Text

from syncd import queries, sync
from syncd.db import Conn, Database
from syncd.errors import (
    Conflict,
    Forbidden,
    NotFound,
    OpRejected,
    PayloadTooLarge,
    PreconditionFailed,
    SyncdError,
)
from syncd.fanout import Hub
from syncd.fields import validate
from syncd.limits import MAX_DOC_BYTES
from syncd.merge import BODY, Entity
from syncd.messages import Op, OpResult
from syncd.store import entity_from_row, note_row
from syncd.textdiff import changed_span
from syncd.types import WRITE_ROLES, Principal
from syncd.unit import Unit, commit
from syncd.views import entity_view

Build = Callable[[Entity | None], list[Op]]


class Unprocessable(SyncdError):
    status = 422
    code = "validation"


# --- conditional requests -------------------------------------------------------------


def etag(version: int) -> str:
    # Weak: a project's derived values (word count, progress) change without a new version.
    return f'W/"{version}"'


def etag_matches(header: str, version: int) -> bool:
    """Weak comparison against an If-Match / If-None-Match list (`*` matches anything)."""
    tags = [t.strip() for t in header.split(",")]
    return "*" in tags or any(t.removeprefix("W/").strip('"') == str(version) for t in tags)


# --- ops --------------------------------------------------------------------------------


def check_fields(kind: str, fields: dict[str, Any]) -> dict[str, Any]:
    """Validate writable fields up front, with the push path's rules and messages."""
    try:
        return validate(kind, fields)
    except OpRejected as r:
        raise Unprocessable(r.message, {"entity": kind}) from None


def text_update(state: bytes | None, new: str) -> bytes | None:
    """The Yjs update turning the document at `state` into `new`, or None when equal."""
    doc: Doc[Any] = Doc()
    text = doc.get(BODY, type=Text)
    if state:
        doc.apply_update(state)
    old = str(text)
    if old == new:
        return None
    prefix, suffix = changed_span(old, new)
    # pycrdt indexes a Text by UTF-8 byte offsets.
    start = len(old[:prefix].encode())
    end = len(old[:len(old) - suffix].encode())
    before = doc.get_state()
    if end > start:
        del text[start:end]
    inserted = new[prefix:len(new) - suffix]
    if inserted:
        text.insert(start, inserted)
    return doc.get_update(before)


def op(kind: str, id: UUID, op_kind: str, **extra: Any) -> Op:
    """A server-made op: no client_seq, and its clock is stamped when it is applied."""
    return Op(client_seq=0, hlc="", entity=kind, id=id, kind=op_kind, **extra)  # type: ignore[arg-type]


def change_ops(kind: str, id: UUID, current: Entity | None, fields: dict[str, Any],
               body: str | None = None, deleted: bool | None = None,
               base: bytes | None = None) -> list[Op]:
    """Ops that set `fields`, make the body `body` and the deleted flag `deleted`. The body
    is diffed from the document state `base` when given (what the client had read), else
    from the current document."""
    ops = []
    if current is not None and deleted is False and current.deleted:
        ops.append(op(kind, id, "restore"))
    if fields or current is None:
        ops.append(op(kind, id, "set", fields=fields))
    if body is not None:
        if base is None and current is not None:
            base = current.body_state
        update = text_update(base, body)
        if update is not None:
            ops.append(op(kind, id, "text", field=BODY, update=update))
    if current is not None and deleted is True and not current.deleted:
        ops.append(op(kind, id, "delete"))
    return ops


def rejection(result: OpResult, op: Op) -> SyncdError:
    message = result.message or "refused"
    # A set op's own entity is checked before; its not_found is a project_id it names.
    if result.code == "validation" or (result.code == "not_found" and op.kind == "set"):
        return Unprocessable(message)
    if result.code == "forbidden":
        return Forbidden(message)
    if result.code == "not_found":
        return NotFound(message)
    if result.code == "too_large":  # the document would grow past its limit
        return PayloadTooLarge(message, {"limit": MAX_DOC_BYTES})
    return Conflict(message, code=result.code or "conflict")


# --- writing --------------------------------------------------------------------


async def check_access(conn: Conn, user: UUID, kind: str, row: dict[str, Any],
                       owner: bool) -> None:
    """The push path's access rule for a write that makes no op (restoring a live note,
    a PATCH that changes nothing): a viewer's no-op is refused like their real writes."""
    if kind == "note" and row["owner_id"] == user:
        return
    project = row["id"] if kind == "project" else row["project_id"]
    cur = await conn.execute("SELECT role FROM members WHERE project_id = %s AND user_id = %s",
                             (project, user))
    found = await cur.fetchone()
    role = found["role"] if found else None
    if role not in (("owner",) if owner else WRITE_ROLES):
        raise Forbidden(f"no write access to {kind} {row['id']}")


async def write(db: Database, hub: Hub, who: Principal, kind: str, id: UUID, build: Build, *,
                if_match: str | None = None, create: bool = False,
                owner: bool = False) -> dict[str, Any]:
    """Build ops from the locked current state and apply them; returns the new Entity.
    `owner`: only the owner may make this write (deleting or restoring a project)."""
    async def tx(unit: Unit) -> dict[str, Any]:
        conn = unit.conn
        current, row = None, None
        if create:
            if await queries.id_taken(conn, id):
                raise Conflict(f"{id} already exists", {"id": str(id)}, code="already_exists")
        else:
            row = await queries.get_row(conn, who.user_id, kind, id, lock=True)
            if row is None:
                raise NotFound(f"no such {kind}")
            if if_match is not None and not etag_matches(if_match, row["version"]):
                raise PreconditionFailed(f"the {kind} has changed", {"etag": etag(row["version"])})
            current = entity_from_row(kind, row)
        ops = build(current)
        if not ops and row is not None:
            await check_access(conn, who.user_id, kind, row, owner)
        if ops:
            # In this transaction, so the precondition above and these ops commit together;
            # stamped by apply_ops once the entities are locked (clock None).
            results = await sync.apply_ops(unit, who, [(o, None) for o in ops],
                                           {id: current} if current else None)
            for o, result in zip(ops, results, strict=True):
                if result.status == "rejected":
                    raise rejection(result, o)
        if current is not None and row is not None and kind == "note":  # as saved, not re-read
            return entity_view("note", {
                **note_row(current), "created_at": row["created_at"],
                "updated_at": row["now"] if current.dirty else row["updated_at"]})
        row = await queries.get_row(conn, who.user_id, kind, id)
        if row is None:
            raise NotFound(f"no such {kind}")
        return (await queries.present(conn, kind, [row], state=True))[0]

    return await commit(db, hub, tx)
