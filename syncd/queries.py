"""Read side of the REST views: what a user can see of the projection, one row or a page.

Visibility is the rule of `sync.snapshot`: a note is visible to its owner and to the
members of its project, a project to its members. Rows another user cannot see are
reported as absent, never as forbidden, so ids do not leak.

Lists paginate by keyset on (sort key, id): the opaque cursor holds the last row's key,
so a page does not shift when rows are added or removed before it (as OFFSET would).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec

from syncd import store
from syncd.db import Conn, Database
from syncd.errors import BadRequest, NotFound
from syncd.messages import Str
from syncd.types import Principal
from syncd.views import entity_view

NOTE_COLS = ("n.id, n.owner_id, n.project_id, n.title, n.tags, n.pinned, n.favorite, "
             "n.deleted, n.body, n.word_count, n.clocks, n.version, n.created_at, n.updated_at, "
             "n.meta")
PROJECT_COLS = ("p.id, p.owner_id, p.title, p.description, p.word_goal, p.status, p.deleted, "
                "p.word_count, p.milestones, p.clocks, p.version, p.created_at, p.updated_at, "
                "p.deadline, p.meta")
NOTE_VISIBLE = ("(n.owner_id = %(u)s OR n.project_id IN "
                "(SELECT project_id FROM members WHERE user_id = %(u)s))")
PROJECT_VISIBLE = "EXISTS (SELECT 1 FROM members m WHERE m.project_id = p.id AND m.user_id = %(u)s)"
TABLES = {"note": ("notes n", NOTE_COLS, NOTE_VISIBLE, "n"),
          "project": ("projects p", PROJECT_COLS, PROJECT_VISIBLE, "p")}
SORTS = {"updated": "updated_at", "created": "created_at", "title": "title"}


async def get_row(conn: Conn, user: UUID, kind: str, id: UUID, *, lock: bool = False,
                  state: bool = True) -> dict[str, Any] | None:
    """The entity's row if `user` can see it; locked FOR UPDATE when asked, and then with
    what a write needs too: its `writers` and the transaction's time (`now`)."""
    table, cols, visible, alias = TABLES[kind]
    extra = ", n.body_state" if kind == "note" and state else ""
    if lock:
        extra += f", {alias}.writers, now() AS now"
    cur = await conn.execute(
        f"SELECT {cols}{extra} FROM {table} WHERE {alias}.id = %(id)s AND {visible}"
        + (f" FOR UPDATE OF {alias}" if lock else ""), {"u": user, "id": id})
    return await cur.fetchone()


async def id_taken(conn: Conn, id: UUID) -> bool:
    """Whether any note or project has this id (they share one id space)."""
    cur = await conn.execute(
        "SELECT EXISTS (SELECT 1 FROM notes WHERE id = %(id)s)"
        " OR EXISTS (SELECT 1 FROM projects WHERE id = %(id)s) AS taken", {"id": id})
    row = await cur.fetchone()
    return bool(row and row["taken"])


@dataclass
class Page:
    """A list request: filters as SQL fragments with named parameters, sort and cursor."""

    sort: str = "updated"
    order: str = "desc"
    limit: int = 50
    cursor: str | None = None
    where: list[str] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)

    def filter(self, sql: str, **params: Any) -> None:
        self.where.append(sql)
        self.params.update(params)


def encode_cursor(sort: str, order: str, key: Any, id: UUID) -> str:
    raw = msgspec.json.encode([sort, order, key, str(id)])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, sort: str, order: str) -> tuple[Any, UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        # The key is typed Str: a crafted cursor cannot carry a NUL into the query.
        c_sort, c_order, key, id = msgspec.json.decode(raw, type=tuple[str, str, Str, str])
        if (c_sort, c_order) != (sort, order):
            raise ValueError("the cursor belongs to another sort order")
        return (key if sort == "title" else datetime.fromisoformat(key)), UUID(id)
    except (ValueError, binascii.Error, msgspec.DecodeError, msgspec.ValidationError):
        raise BadRequest("cursor is not one this list returned (same sort and order)",
                         {"param": "cursor"}, code="invalid_cursor") from None


async def list_rows(conn: Conn, user: UUID, kind: str,
                    page: Page) -> tuple[list[dict[str, Any]], str | None]:
    """One page of visible rows and the cursor of the next page (None on the last)."""
    cur = await conn.execute(*list_query(user, kind, page))
    rows = await cur.fetchall()
    if len(rows) <= page.limit:
        return rows, None
    rows = rows[:page.limit]
    last = rows[-1][SORTS[page.sort]]
    last_key = last.isoformat() if isinstance(last, datetime) else last
    return rows, encode_cursor(page.sort, page.order, last_key, rows[-1]["id"])


def list_query(user: UUID, kind: str, page: Page) -> tuple[str, dict[str, Any]]:
    """The SQL and parameters of a page (one row more than the page, to tell if it ends)."""
    table, cols, visible, alias = TABLES[kind]
    key = f"{alias}.{SORTS[page.sort]}"
    where = [visible, *page.where]
    params = {**page.params, "u": user, "limit": page.limit + 1}
    desc = page.order == "desc"
    if page.cursor:
        params["ck"], params["cid"] = decode_cursor(page.cursor, page.sort, page.order)
        where.append(f"({key}, {alias}.id) {'<' if desc else '>'} (%(ck)s, %(cid)s)")
    direction = "DESC" if desc else "ASC"
    order = f" ORDER BY {key} {direction}, {alias}.id {direction} LIMIT %(limit)s"
    if kind == "note":
        # Owned notes, and notes others own in the user's projects, each branch read from
        # its index and the branches merged: the visibility OR in one query would scan and
        # sort every note the user can see. Others' notes are the two ranges of the
        # (project_id, owner_id, …) index around the user's id: `owner_id <> user` is no
        # index range, and visited every note of the user's own projects to drop them.
        filters = " AND ".join(where[1:]) or "TRUE"  # all but the visibility rule
        shared = "".join(
            f" UNION ALL (SELECT {cols} FROM notes n JOIN members m"
            f" ON m.project_id = n.project_id AND m.user_id = %(u)s"
            f" WHERE n.project_id IS NOT NULL AND n.owner_id {side} %(u)s AND {filters}{order})"
            for side in ("<", ">"))
        sql = (f"SELECT * FROM ((SELECT {cols} FROM notes n WHERE n.owner_id = %(u)s"
               f" AND {filters}{order}){shared}) n{order}")
    else:
        sql = f"SELECT {cols} FROM {table} WHERE {' AND '.join(where)}{order}"
    return sql, params


async def present(conn: Conn, kind: str, rows: list[dict[str, Any]],
                  state: bool = False) -> list[dict[str, Any]]:
    """Rows as wire Entities; projects with their members."""
    if kind == "note":
        return [entity_view("note", r, with_state=state) for r in rows]
    members = await store.load_members(conn, [r["id"] for r in rows])
    return [entity_view("project", r, members.get(r["id"], {})) for r in rows]


async def read(db: Database, who: Principal, kind: str, id: UUID) -> dict[str, Any]:
    async def tx(conn: Conn) -> dict[str, Any]:
        row = await get_row(conn, who.user_id, kind, id)
        if row is None:
            raise NotFound(f"no such {kind}")
        return (await present(conn, kind, [row], state=True))[0]

    return await db.run(tx, read_only=True)


async def listing(db: Database, who: Principal, kind: str, page: Page,
                  within: UUID | None = None) -> dict[str, Any]:
    """A page of Entities; `within` lists a project's notes (404 unless it is visible)."""
    if within is not None:
        page.filter("n.project_id = %(within)s", within=within)

    async def tx(conn: Conn) -> dict[str, Any]:
        if within is not None and await get_row(conn, who.user_id, "project", within) is None:
            raise NotFound("no such project")
        rows, cursor = await list_rows(conn, who.user_id, kind, page)
        return {f"{kind}s": await present(conn, kind, rows), "next_cursor": cursor}

    return await db.run(tx, read_only=True)
