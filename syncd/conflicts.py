"""Conflicts made visible: list a user's recorded conflicts and settle one through a new op.

The planner (plan.py) records a conflict when a field write meets a value the writing
device had not seen; settling it writes the chosen value with a fresh server clock, so
it wins over both sides and reaches every device like any other write.
"""

from __future__ import annotations

from typing import Any, Literal
from uuid import UUID

import msgspec

from syncd import sync
from syncd.db import Conn, Database
from syncd.errors import BadRequest, Conflict, Forbidden, NotFound
from syncd.fanout import Hub
from syncd.messages import Op
from syncd.types import Principal
from syncd.unit import Unit, commit

Status = Literal["open", "resolved", "all"]
_FILTER = {"open": "AND resolved_at IS NULL", "resolved": "AND resolved_at IS NOT NULL",
           "all": ""}
_COLUMNS = ("id, entity, entity_id, field, mine, theirs, winner, created_at, resolved_at,"
            " resolution")


class ResolveRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """`choose` is "mine", "theirs", or the value itself."""

    choose: Any


async def list_conflicts(db: Database, who: Principal, status: Status,
                         limit: int = 200) -> list[dict[str, Any]]:
    async def tx(conn: Conn) -> list[dict[str, Any]]:
        cur = await conn.execute(
            f"SELECT {_COLUMNS} FROM conflicts WHERE user_id = %s {_FILTER[status]}"
            " ORDER BY created_at DESC, id LIMIT %s", (who.user_id, limit))
        return await cur.fetchall()

    return await db.run(tx, read_only=True)


def _choice(row: dict[str, Any], choose: Any) -> Any:
    if choose == "mine":
        return row["mine"]["value"]
    if choose == "theirs":
        return row["theirs"]["value"]
    return choose


def _op(row: dict[str, Any], value: Any) -> Op:
    if row["field"] == "deleted":
        if not isinstance(value, bool):
            raise BadRequest("deleted must be chosen as true or false", code="validation")
        return Op(0, "", row["entity"], row["entity_id"], "delete" if value else "restore")
    return Op(0, "", row["entity"], row["entity_id"], "set", fields={row["field"]: value})


async def resolve(db: Database, hub: Hub, who: Principal, conflict_id: UUID,
                  choose: Any) -> dict[str, Any]:
    async def tx(unit: Unit) -> dict[str, Any]:
        conn = unit.conn
        cur = await conn.execute(
            f"SELECT {_COLUMNS} FROM conflicts WHERE id = %s AND user_id = %s FOR UPDATE",
            (conflict_id, who.user_id))
        row = await cur.fetchone()
        if row is None:
            raise NotFound("no such conflict")
        if row["resolved_at"] is not None:
            raise Conflict("this conflict is already resolved", code="already_resolved")
        value = _choice(row, choose)
        op = _op(row, value)
        [result] = await sync.apply_ops(unit, who, [(op, None)])
        if result.status == "rejected":
            if result.code == "forbidden":
                raise Forbidden(result.message or "no write access")
            if result.code == "not_found":
                raise NotFound(result.message or "gone")
            raise BadRequest(result.message or "not a valid value", code="validation")
        resolution = {"choose": choose if choose in ("mine", "theirs") else "value",
                      "value": value}
        cur = await conn.execute(
            f"""UPDATE conflicts SET resolved_at = now(), resolution = %s
                WHERE id = %s RETURNING {_COLUMNS}""",
            (msgspec.json.encode(resolution).decode(), conflict_id))
        return await cur.fetchone() or {}

    return await commit(db, hub, tx)
