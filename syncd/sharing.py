"""Project membership: add, remove and list members, with the log entries that go with it.

Adding a member appends a `put` of the project and of each of its notes to the new
member's log (so their one cursor picks it all up); removing one appends a `revoke` for
each; every remaining member gets a `member` event. The project row is locked first, so
a concurrent push into the project waits and then sees the new membership.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from syncd import hlc as hlcs
from syncd import store
from syncd.db import Conn, Database
from syncd.errors import Conflict, Forbidden, NotFound
from syncd.fanout import Hub
from syncd.plan import Planned
from syncd.types import Principal
from syncd.unit import Unit, commit


async def _project_role(conn: Conn, who: Principal, project_id: UUID) -> tuple[UUID, str]:
    """Lock the project; return its owner and the caller's role (404 when they can't see it)."""
    cur = await conn.execute(
        """SELECT p.owner_id, m.role FROM projects p
           LEFT JOIN members m ON m.project_id = p.id AND m.user_id = %s
           WHERE p.id = %s FOR UPDATE OF p""", (who.user_id, project_id))
    row = await cur.fetchone()
    if row is None or row["role"] is None:
        raise NotFound("no such project", code="not_found")
    return row["owner_id"], row["role"]


async def list_members(db: Database, who: Principal, project_id: UUID) -> list[dict[str, Any]]:
    async def tx(conn: Conn) -> list[dict[str, Any]]:
        cur = await conn.execute(
            """SELECT m.user_id, m.role, u.email, u.name, m.added_at FROM members m
               JOIN users u ON u.id = m.user_id WHERE m.project_id = %s ORDER BY m.added_at""",
            (project_id,))
        rows = await cur.fetchall()
        if not any(r["user_id"] == who.user_id for r in rows):
            raise NotFound("no such project", code="not_found")
        return rows

    return await db.run(tx, read_only=True)


def _put(ent_row: dict[str, Any], kind: str, user: UUID, who: Principal) -> Planned:
    ent = store.entity_from_row(kind, ent_row)
    return Planned({user}, kind, ent.id, "put", hlcs.clock.tick(who.device_id), who.user_id,
                   who.device_id, fields={"fields": ent.fields, "clocks": ent.clocks},
                   payload=ent.body_state)


async def add_member(db: Database, hub: Hub, who: Principal, project_id: UUID, email: str,
                     role: str) -> dict[str, Any]:
    async def tx(unit: Unit) -> dict[str, Any]:
        conn = unit.conn
        _, my_role = await _project_role(conn, who, project_id)
        if my_role != "owner":
            raise Forbidden("only the project's owner manages members")
        cur = await conn.execute("SELECT id FROM users WHERE email = %s",
                                 (email.strip().lower(),))
        user = await cur.fetchone()
        if user is None:
            raise NotFound("no user with that email", code="user_not_found")
        member: UUID = user["id"]
        members = (await store.load_members(conn, [project_id])).get(project_id, {})
        if members.get(member) == "owner":
            raise Conflict("the owner's role cannot change", code="owner_role")
        planned: list[Planned] = []
        if member not in members:
            cur = await conn.execute("SELECT * FROM projects WHERE id = %s", (project_id,))
            planned.append(_put(await cur.fetchone() or {}, "project", member, who))
            cur = await conn.execute(
                "SELECT * FROM notes WHERE project_id = %s AND owner_id <> %s ORDER BY id",
                (project_id, member))
            planned += [_put(n, "note", member, who) for n in await cur.fetchall()]
        await store.add_members(conn, [(project_id, member, role)])
        audience = set(members) | {member}
        planned.append(Planned(audience, "project", project_id, "member",
                               hlcs.clock.tick(who.device_id), who.user_id, who.device_id,
                               fields={"user_id": str(member), "role": role}))
        await unit.append(planned)
        return {"user_id": member, "role": role}

    return await commit(db, hub, tx)


async def remove_member(db: Database, hub: Hub, who: Principal, project_id: UUID,
                        member: UUID) -> None:
    async def tx(unit: Unit) -> None:
        conn = unit.conn
        owner, my_role = await _project_role(conn, who, project_id)
        if my_role != "owner" and member != who.user_id:
            raise Forbidden("only the project's owner manages members")
        if member == owner:
            raise Conflict("the owner cannot be removed", code="owner_role")
        members = (await store.load_members(conn, [project_id])).get(project_id, {})
        if member not in members:
            raise NotFound("not a member of this project", code="not_found")
        await conn.execute("DELETE FROM members WHERE project_id = %s AND user_id = %s",
                           (project_id, member))
        tick = hlcs.clock.tick(who.device_id)
        planned = [Planned({member}, "project", project_id, "revoke", tick, who.user_id,
                           who.device_id)]
        cur = await conn.execute(
            "SELECT id FROM notes WHERE project_id = %s AND owner_id <> %s ORDER BY id",
            (project_id, member))
        planned += [Planned({member}, "note", n["id"], "revoke", tick, who.user_id,
                            who.device_id) for n in await cur.fetchall()]
        planned.append(Planned(set(members), "project", project_id, "member", tick,
                               who.user_id, who.device_id,
                               fields={"user_id": str(member), "role": None}))
        await unit.append(planned)

    await commit(db, hub, tx)
