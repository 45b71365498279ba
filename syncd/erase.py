"""Account deletion: remove everything a user owns, in one transaction.

Removed: the user, their devices and refresh tokens, their whole log, their notes and
projects (with every log row about them in anyone's log, and the members rows of their
projects), their memberships, the words anyone wrote in their notes (words_written), and
the payloads no remaining event refers to. Other users
who could see any of it get a `revoke` event so their devices drop it. Edits the user made
to other people's notes stay in those people's logs (removing them would change their
text) but are pseudonymised: author `00000000-0000-0000-0000-000000000000`, no device.
Rows of any other table with a `user_id`, `owner_id` or `author_id` column naming the user
(tables other modules add later, e.g. conflicts) are deleted too.

The event log's append-only trigger lets this through because the transaction sets
`syncd.erase`. Afterwards `syncd rebuild --verify` still holds: the projection of what
remains is what the remaining log says.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from uuid import UUID

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from psycopg import sql

from syncd import hlc as hlcs
from syncd.db import Conn, Database
from syncd.errors import Forbidden, Unauthorized
from syncd.fanout import Hub
from syncd.plan import Planned
from syncd.types import Principal
from syncd.unit import Unit, commit

DELETED_USER = UUID(int=0)
HANDLED = {"users", "devices", "refresh_tokens", "events", "payloads", "notes", "projects",
           "members", "words_written"}


async def check_password(db: Database, who: Principal, password: str) -> None:
    async def tx(conn: Conn) -> str | None:
        cur = await conn.execute("SELECT password_hash FROM users WHERE id = %s",
                                 (who.user_id,))
        row = await cur.fetchone()
        return row["password_hash"] if row else None

    hashed = await db.run(tx, read_only=True)
    if hashed is None:
        raise Unauthorized("the account no longer exists")
    try:
        await asyncio.to_thread(PasswordHasher().verify, hashed, password)
    except (VerificationError, InvalidHashError):
        raise Forbidden("wrong password", code="invalid_credentials") from None


async def delete_account(db: Database, hub: Hub, user: UUID) -> list[UUID]:
    """Erase the user. Returns their device ids (whose sockets the caller closes)."""
    async def tx(unit: Unit) -> list[UUID]:
        conn = unit.conn
        await conn.execute("SET LOCAL syncd.erase = 'on'")
        cur = await conn.execute("SELECT id FROM devices WHERE user_id = %s", (user,))
        devices = [r["id"] for r in await cur.fetchall()]
        cur = await conn.execute(
            "SELECT id FROM projects WHERE owner_id = %s ORDER BY id FOR UPDATE", (user,))
        projects = [r["id"] for r in await cur.fetchall()]
        cur = await conn.execute(
            "SELECT id, project_id FROM notes WHERE owner_id = %s OR project_id = ANY(%s)"
            " ORDER BY id FOR UPDATE", (user, projects))
        notes = await cur.fetchall()
        cur = await conn.execute(
            "SELECT id, owner_id FROM notes WHERE id = ANY(%s)", ([n["id"] for n in notes],))
        owner_of = {r["id"]: r["owner_id"] for r in await cur.fetchall()}
        cur = await conn.execute(
            "SELECT project_id, user_id FROM members WHERE project_id = ANY(%s) AND user_id <> %s",
            (list({n["project_id"] for n in notes if n["project_id"]} | set(projects)), user))
        members: dict[UUID, set[UUID]] = defaultdict(set)
        for r in await cur.fetchall():
            members[r["project_id"]].add(r["user_id"])

        # Who loses sight of what: members of the user's projects lose the project and its
        # notes (except their own); members of others' projects lose the user's notes there.
        revokes: list[tuple[UUID, str, UUID]] = [
            (m, "project", p) for p in projects for m in members[p]]
        for n in notes:
            pid, owner = n["project_id"], owner_of[n["id"]]
            if pid is None or (owner != user and pid not in projects):
                continue
            revokes += [(m, "note", n["id"]) for m in members[pid] if m != owner]
        owned = projects + [n["id"] for n in notes if owner_of[n["id"]] == user]

        cur = await conn.execute(
            """DELETE FROM events WHERE user_id = %s OR entity_id = ANY(%s)
               RETURNING op_id, has_payload""", (user, owned))
        candidates = sorted({r["op_id"] for r in await cur.fetchall() if r["has_payload"]})
        await conn.execute(
            """DELETE FROM payloads p WHERE p.op_id = ANY(%s)
               AND NOT EXISTS (SELECT 1 FROM events e WHERE e.op_id = p.op_id)""",
            (candidates,))
        await conn.execute(
            "UPDATE events SET author_id = %s, device_id = NULL WHERE author_id = %s",
            (DELETED_USER, user))
        await conn.execute("DELETE FROM members WHERE user_id = %s OR project_id = ANY(%s)",
                           (user, projects))
        # Others' words in the user's notes go with those notes' events: stats stay what
        # the remaining log says.
        await conn.execute("DELETE FROM words_written WHERE user_id = %s OR note_id = ANY(%s)",
                           (user, owned))
        cur = await conn.execute(
            "DELETE FROM notes WHERE owner_id = %s RETURNING project_id", (user,))
        touched = {r["project_id"] for r in await cur.fetchall() if r["project_id"]}
        await conn.execute("DELETE FROM projects WHERE owner_id = %s", (user,))
        # Projects that lose a note's words count what is left (a project's word_count is
        # the sum over its live notes).
        await conn.execute(
            """UPDATE projects p SET word_count = coalesce((SELECT sum(n.word_count)
                   FROM notes n WHERE n.project_id = p.id AND NOT n.deleted), 0)
               WHERE p.id = ANY(%s)""", (list(touched),))
        await _erase_other_tables(conn, user)
        await conn.execute("DELETE FROM devices WHERE user_id = %s", (user,))
        await conn.execute("DELETE FROM users WHERE id = %s", (user,))

        planned = [Planned({m}, kind, eid, "revoke", hlcs.clock.tick(DELETED_USER),
                           DELETED_USER, None) for m, kind, eid in sorted(revokes)]
        await unit.append(planned)
        return devices

    return await commit(db, hub, tx)


async def _erase_other_tables(conn: Conn, user: UUID) -> None:
    cur = await conn.execute(
        """SELECT table_name, column_name FROM information_schema.columns
           WHERE table_schema = current_schema()
             AND column_name IN ('user_id', 'owner_id', 'author_id')
             AND table_name NOT IN (SELECT unnest(%s::text[]))
             AND table_name IN (SELECT table_name FROM information_schema.tables
                                WHERE table_schema = current_schema()
                                  AND table_type = 'BASE TABLE')
           ORDER BY table_name, column_name""", (sorted(HANDLED),))
    for r in await cur.fetchall():
        await conn.execute(sql.SQL("DELETE FROM {} WHERE {} = %s").format(
            sql.Identifier(r["table_name"]), sql.Identifier(r["column_name"])), (user,))
