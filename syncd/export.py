"""Export a user's data as one streamed JSON document, and import such a document.

The document: `{"format": "syncd-export", "version": 1, "exported_at", "user" (with
`email_verified_at`), "devices", "identities" (the OpenID identities linked: `issuer`,
`subject`), "projects" (the user's, with members), "memberships" (projects shared with
them), "conflicts", "notes" (the user's: fields, clocks, plain-text `body`, base64 Yjs
`body_state`), "events" (the user's whole log, as pull returns it: text updates and put
states base64)}`.
It is read from one REPEATABLE READ snapshot and written piece by piece, so memory stays
flat however large the log is.

Import (`syncd import FILE`) recreates the account and replays the source events
(set/text/delete/restore) of the entities the user owned, in log order and with their
original HLCs, through the same plan/merge/log path as a push. The projection it
produces equals the exported one (fields, clocks, bodies, word counts, milestones
reached). Limits: seqs, op ids, timestamps and `version`s are new; every replayed event is
authored by one "import" device of the user (other authors and devices are not
recreated); other users' memberships and projects shared with the user are not restored
(those users do not exist on the new server), and a note in someone else's project comes
back outside any project; the linked OpenID identities and whether the email was verified
come along (the owner signs in through their provider as before); the password is not
exported, so the account gets the one given
to the import (or none: it cannot log in until an operator sets one).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import msgspec

from syncd import log, store, sync
from syncd.db import Conn, Database
from syncd.errors import Conflict
from syncd.messages import Event, Op
from syncd.projection import SOURCE_KINDS
from syncd.types import Principal
from syncd.unit import Unit, commit
from syncd.views import entity_view, settings_view

FORMAT = "syncd-export"
VERSION = 1
_enc = msgspec.json.Encoder()


async def export_stream(db: Database, user_id: UUID,
                        on_item: Callable[[], None] | None = None) -> AsyncIterator[bytes]:
    """Yield the export document in chunks. `on_item` is called once per entity or event."""
    tick = on_item or (lambda: None)
    async with db.pool.connection() as conn, conn.transaction():
        await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        cur = await conn.execute(
            """SELECT id, email, name, timezone, created_at, email_verified_at
               FROM users WHERE id = %s""",
            (user_id,))
        user = await cur.fetchone()
        if user is None:
            return
        cur = await conn.execute(
            """SELECT id, name, platform, acked, created_at, last_seen_at, revoked_at
               FROM devices WHERE user_id = %s ORDER BY created_at""", (user_id,))
        devices = await cur.fetchall()
        cur = await conn.execute(
            """SELECT issuer, subject, created_at FROM oidc_identities WHERE user_id = %s
               ORDER BY issuer, subject""", (user_id,))
        identities = await cur.fetchall()
        yield (b'{"format":"%s","version":%d,"exported_at":%s,"user":%s,"devices":%s,'
               b'"identities":%s' % (
                   FORMAT.encode(), VERSION, _enc.encode(datetime.now(UTC)),
                   _enc.encode(user), _enc.encode(devices), _enc.encode(identities)))

        cur = await conn.execute("SELECT * FROM projects WHERE owner_id = %s ORDER BY id",
                                 (user_id,))
        projects = await cur.fetchall()
        members = await store.load_members(conn, [p["id"] for p in projects])
        yield b',"projects":['
        for i, p in enumerate(projects):
            tick()
            yield (b"," if i else b"") + _enc.encode(
                entity_view("project", p, members.get(p["id"], {})))
        cur = await conn.execute(
            """SELECT m.project_id, m.role FROM members m JOIN projects p ON p.id = m.project_id
               WHERE m.user_id = %s AND p.owner_id <> %s ORDER BY m.project_id""",
            (user_id, user_id))
        yield b'],"memberships":' + _enc.encode(await cur.fetchall())
        cur = await conn.execute(
            """SELECT id, entity, entity_id, field, mine, theirs, winner, created_at,
                      resolved_at, resolution FROM conflicts WHERE user_id = %s
               ORDER BY created_at, id""", (user_id,))
        yield b',"conflicts":' + _enc.encode(await cur.fetchall())
        cur = await conn.execute(f"SELECT {store.SETTINGS_SELECT} FROM settings WHERE user_id = %s",
                                 (user_id,))
        yield b',"settings":' + _enc.encode(settings_view(await cur.fetchone(), user_id))

        yield b',"notes":['
        first = True
        async with conn.cursor(name="syncd_export_notes") as notes:
            await notes.execute("SELECT * FROM notes WHERE owner_id = %s ORDER BY id",
                                (user_id,))
            async for n in notes:
                tick()
                yield (b"" if first else b",") + _enc.encode(entity_view("note", n))
                first = False

        yield b'],"events":['
        first = True
        async with conn.cursor(name="syncd_export_events") as events:
            await events.execute(
                """SELECT e.seq, e.entity, e.entity_id, e.kind, e.fields, e.hlc, e.device_id,
                          e.author_id, e.client_seq, e.at, p.data
                   FROM events e LEFT JOIN payloads p ON e.has_payload AND p.op_id = e.op_id
                   WHERE e.user_id = %s ORDER BY e.seq""", (user_id,))
            async for r in events:
                tick()
                yield (b"" if first else b",") + _enc.encode(
                    log.make_event(r["seq"], r, r["data"]))
                first = False
        yield b"]}\n"


async def count_items(db: Database, user_id: UUID) -> int:
    async def tx(conn: Conn) -> int:
        cur = await conn.execute(
            """SELECT (SELECT count(*) FROM projects WHERE owner_id = %(u)s)
                    + (SELECT count(*) FROM notes WHERE owner_id = %(u)s)
                    + (SELECT count(*) FROM events WHERE user_id = %(u)s) AS n""",
            {"u": user_id})
        row = await cur.fetchone()
        return int(row["n"]) if row else 0

    return await db.run(tx, read_only=True)


class ExportUser(msgspec.Struct):
    id: UUID
    email: str
    name: str = ""
    timezone: str = "UTC"
    email_verified_at: datetime | None = None  # a document from before it: unverified


class ExportIdentity(msgspec.Struct):
    issuer: str
    subject: str


class ExportEntity(msgspec.Struct):
    id: UUID


class ExportDocument(msgspec.Struct):
    format: str
    version: int
    user: ExportUser
    projects: list[ExportEntity]
    notes: list[ExportEntity]
    events: list[Event]
    identities: list[ExportIdentity] = []


def source_ops(doc: ExportDocument) -> list[tuple[Op, str]]:
    """The replayable ops: source events on entities the user owned, in log order."""
    owned = {e.id for e in doc.projects} | {e.id for e in doc.notes} | {doc.user.id}
    projects = {e.id for e in doc.projects}
    ops = []
    for ev in sorted(doc.events, key=lambda e: e.seq):
        if (ev.kind not in SOURCE_KINDS or ev.id not in owned
                or ev.entity not in ("note", "project", "settings")):
            continue
        fields = dict(ev.fields) if ev.fields is not None else None
        if fields and ev.entity == "note" and fields.get("project_id") is not None:
            try:
                if UUID(str(fields["project_id"])) not in projects:
                    fields["project_id"] = None  # someone else's project: not ours to recreate
            except ValueError:
                fields.pop("project_id")
        op = Op(client_seq=0, hlc=ev.hlc, entity=ev.entity,  # type: ignore[arg-type]
                id=ev.id, kind=ev.kind,  # type: ignore[arg-type]
                fields=fields if ev.kind == "set" else None,
                field="body" if ev.kind == "text" else None,
                update=ev.update if ev.kind == "text" else None)
        ops.append((op, ev.hlc))
    return ops


async def import_document(db: Database, raw: bytes, password_hash: str,
                          on_op: Callable[[int], None] | None = None,
                          batch: int = 500) -> dict[str, Any]:
    """Recreate the exported account on this server and replay its source events."""
    doc = msgspec.json.decode(raw, type=ExportDocument)
    if doc.format != FORMAT or doc.version != VERSION:
        raise ValueError(f"not a {FORMAT} version {VERSION} document")
    device = uuid.uuid4()
    who = Principal(doc.user.id, device)

    async def create(conn: Conn) -> None:
        cur = await conn.execute("SELECT 1 FROM users WHERE id = %s OR email = %s",
                                 (doc.user.id, doc.user.email))
        if await cur.fetchone() is not None:
            raise Conflict("this account already exists on the server", code="exists")
        ids = [e.id for e in doc.notes] + [e.id for e in doc.projects]
        cur = await conn.execute(
            "SELECT 1 FROM notes WHERE id = ANY(%s) UNION ALL "
            "SELECT 1 FROM projects WHERE id = ANY(%s) LIMIT 1", (ids, ids))
        if await cur.fetchone() is not None:
            raise Conflict("some of these notes or projects exist on the server", code="exists")
        cur = await conn.execute(
            """SELECT 1 FROM oidc_identities
               WHERE (issuer, subject) IN (SELECT * FROM unnest(%s::text[], %s::text[]))""",
            ([i.issuer for i in doc.identities], [i.subject for i in doc.identities]))
        if await cur.fetchone() is not None:
            raise Conflict("an OpenID identity of this account is linked to another one here",
                           code="exists")
        await conn.execute(
            """INSERT INTO users (id, email, name, timezone, password_hash, email_verified_at)
               VALUES (%s, %s, %s, %s, %s, %s)""",
            (doc.user.id, doc.user.email, doc.user.name, doc.user.timezone, password_hash,
             doc.user.email_verified_at))
        # The account's owner signs in through their provider as before the move.
        for i in doc.identities:
            await conn.execute(
                "INSERT INTO oidc_identities (issuer, subject, user_id) VALUES (%s, %s, %s)",
                (i.issuer, i.subject, doc.user.id))
        await conn.execute(
            "INSERT INTO devices (id, user_id, name, platform) VALUES (%s, %s, 'import', 'cli')",
            (device, doc.user.id))

    await db.run(create)
    ops = source_ops(doc)
    results: dict[str, int] = {"applied": 0, "rejected": 0}
    for start in range(0, len(ops), batch):
        chunk = ops[start:start + batch]

        async def replay(unit: Unit, chunk: list[tuple[Op, str]] = chunk) -> list[Any]:
            return await sync.apply_ops(unit, who, chunk)

        # `syncd import` runs apart from any server: no socket listens to a hub here, and
        # the account's devices are new, so they read it all from the log.
        for r in await commit(db, None, replay):
            results[r.status] = results.get(r.status, 0) + 1
        if on_op:
            on_op(len(chunk))
    return {"user_id": doc.user.id, "ops": len(ops), **results}

