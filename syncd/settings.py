"""A user's settings (theme, font size, time zone, what to be notified of, anything the
app keeps): one `settings` entity per user, its id the user's, one LWW register per key.

Devices write them with `set` ops like any entity and receive them through pull, the
snapshot and the sync socket; no one else sees them (plan.Batch). The REST view reads the
row and writes through the push path in one unit of work, with `If-Match` checked under
the row lock, as edits.py does for notes and projects.
"""

from __future__ import annotations

from typing import Any

from syncd import store, sync
from syncd.db import Conn, Database
from syncd.edits import etag, etag_matches, op, rejection
from syncd.errors import PreconditionFailed
from syncd.fanout import Hub
from syncd.store import SETTINGS_SELECT
from syncd.types import Principal
from syncd.unit import Unit, commit
from syncd.views import settings_view


async def _view(conn: Conn, who: Principal) -> dict[str, Any]:
    cur = await conn.execute(f"SELECT {SETTINGS_SELECT} FROM settings WHERE user_id = %s",
                             (who.user_id,))
    return settings_view(await cur.fetchone(), who.user_id)


async def read(db: Database, who: Principal) -> dict[str, Any]:
    async def tx(conn: Conn) -> dict[str, Any]:
        return await _view(conn, who)

    return await db.run(tx, read_only=True)


async def patch(db: Database, hub: Hub, who: Principal, values: dict[str, Any],
                if_match: str | None = None) -> dict[str, Any]:
    """Set the given keys (null clears one) as one server-made op; returns the settings."""
    async def tx(unit: Unit) -> dict[str, Any]:
        locked = await store.lock_settings(unit.conn, [who.user_id])
        current = locked.get(who.user_id)
        version = current.version if current else 0
        if if_match is not None and not etag_matches(if_match, version):
            raise PreconditionFailed("the settings have changed", {"etag": etag(version)})
        if values:
            change = op("settings", who.user_id, "set", fields=values)
            # Stamped by apply_ops once the row is locked, above the clocks it holds.
            [result] = await sync.apply_ops(unit, who, [(change, None)], locked)
            if result.status == "rejected":
                raise rejection(result, change)
        return await _view(unit.conn, who)

    return await commit(db, hub, tx)
