"""`syncd export` and `syncd import`: the export document to and from a file, with a
progress bar on stderr, straight against the database (no server needed)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import BinaryIO
from uuid import UUID

from rich.console import Console
from rich.progress import Progress

from syncd.db import Conn, Database
from syncd.errors import SyncdError
from syncd.export import count_items, export_stream, import_document
from syncd.migrate import migrate_sync

UNUSABLE_PASSWORD = "!"  # not an argon2 hash: every login attempt fails


def export_to_file(url: str, email: str, out: str | None) -> int:
    if out is None:
        return asyncio.run(_export(url, email.strip().lower(), sys.stdout.buffer, None))
    with open(out, "wb") as sink:
        return asyncio.run(_export(url, email.strip().lower(), sink, out))


async def _export(url: str, email: str, sink: BinaryIO, out: str | None) -> int:
    db = Database(url, 1, 2)
    await db.open()
    try:
        async def find(conn: Conn) -> UUID | None:
            cur = await conn.execute("SELECT id FROM users WHERE email = %s", (email,))
            row = await cur.fetchone()
            return row["id"] if row else None

        user = await db.run(find, read_only=True)
        if user is None:
            print(f"syncd: no account with email {email}", file=sys.stderr)
            return 1
        total = await count_items(db, user)
        with Progress(console=Console(stderr=True), transient=out is None) as progress:
            task = progress.add_task(f"exporting {email}", total=total)
            async for chunk in export_stream(db, user, lambda: progress.advance(task)):
                sink.write(chunk)
        if out:
            print(f"syncd: wrote {total} items to {out}", file=sys.stderr)
        return 0
    finally:
        await db.close()


def import_from_file(url: str, path: str, password: str | None) -> int:
    raw = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
    migrate_sync(url)
    hashed = UNUSABLE_PASSWORD
    if password:
        from argon2 import PasswordHasher

        hashed = PasswordHasher().hash(password)
    return asyncio.run(_import(url, raw, hashed))


async def _import(url: str, raw: bytes, hashed: str) -> int:
    db = Database(url, 1, 2)
    await db.open()
    try:
        with Progress(console=Console(stderr=True)) as progress:
            task = progress.add_task("replaying the log", total=None)
            try:
                result = await import_document(db, raw, hashed,
                                               lambda n: progress.advance(task, n))
            except (SyncdError, ValueError) as e:
                print(f"syncd: import refused: {e}", file=sys.stderr)
                return 1
        print(f"syncd: imported user {result['user_id']}: {result['ops']} ops "
              f"({result['applied']} applied, {result['rejected']} rejected)", file=sys.stderr)
        if hashed == UNUSABLE_PASSWORD:
            print("syncd: it has no password yet: `syncd user set-password <email>` sets one, "
                  "or its owner resets it by mail", file=sys.stderr)
        return 0 if result["rejected"] == 0 else 1
    finally:
        await db.close()
