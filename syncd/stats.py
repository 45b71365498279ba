"""Writing stats: words written per day, daily streaks, projects by status, milestones.

Words are counted exactly, not estimated: each of the user's text ops adds the change it
made in its note's plain-text word count (negative for deletions), so "words written" is
net of deletions, per day. The ops' transactions keep those changes per quarter hour in
`words_written` (syncd/words.py); a request sums that user's quarters into days.

The day of an edit is the local date, in the user's time zone (users.timezone, set with
PATCH /v1/auth/me), of its HLC wall time: when the device made the edit, not when it
synced. An offline week of writing counts for the days it was written (HLCs are already
clamped to at most 5 minutes ahead of the server, so a skewed clock cannot invent a
future day). A streak counts days with a positive net; today not written yet does not
break the current streak.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from syncd.db import Conn, Database
from syncd.log import iso
from syncd.types import Principal

Period = Literal["week", "month", "year", "all"]
DAYS = {"week": 7, "month": 30, "year": 365}


def words_by_day(quarters: list[tuple[datetime, int]], tz: ZoneInfo) -> dict[date, int]:
    """Pure: sum (quarter hour, words) into local days."""
    out: dict[date, int] = defaultdict(int)
    for when, words in quarters:
        out[when.astimezone(tz).date()] += words
    return dict(out)


def streaks(days: dict[date, int], today: date) -> tuple[int, int]:
    """(current, longest) runs of consecutive days with a positive net word count."""
    written = sorted(d for d, n in days.items() if n > 0)
    longest = run = 0
    prev: date | None = None
    for d in written:
        run = run + 1 if prev is not None and d - prev == timedelta(days=1) else 1
        longest = max(longest, run)
        prev = d
    current = 0
    day = today if today in set(written) else today - timedelta(days=1)
    present = set(written)
    while day in present:
        current += 1
        day -= timedelta(days=1)
    return current, longest


async def stats(db: Database, who: Principal, period: Period,
                now: datetime | None = None) -> dict[str, Any]:
    async def tx(conn: Conn) -> dict[str, Any]:
        cur = await conn.execute("SELECT timezone FROM users WHERE id = %s", (who.user_id,))
        user = await cur.fetchone()
        cur = await conn.execute(
            """SELECT quarter, sum(words)::bigint AS words FROM words_written
               WHERE user_id = %s GROUP BY quarter""", (who.user_id,))
        quarters = [(r["quarter"], r["words"]) for r in await cur.fetchall()]
        cur = await conn.execute(
            """SELECT p.status, count(*) AS n FROM projects p
               JOIN members m ON m.project_id = p.id AND m.user_id = %s
               WHERE NOT p.deleted GROUP BY p.status""", (who.user_id,))
        projects = {r["status"]: r["n"] for r in await cur.fetchall()}
        cur = await conn.execute(
            """SELECT entity_id, fields, seq, at FROM events
               WHERE user_id = %s AND kind = 'milestone' ORDER BY seq""", (who.user_id,))
        milestones = await cur.fetchall()
        return {"tz": user["timezone"] if user else "UTC", "quarters": quarters,
                "projects": projects, "milestones": milestones}

    got = await db.run(tx, read_only=True, repeatable=True)
    tz = _zone(got["tz"])
    days = words_by_day(got["quarters"], tz)
    today = (now or datetime.now(tz)).astimezone(tz).date()
    first = min(days, default=today)
    start = min(first, today) if period == "all" else today - timedelta(days=DAYS[period] - 1)
    series = [{"date": (start + timedelta(days=i)).isoformat(),
               "words": days.get(start + timedelta(days=i), 0)}
              for i in range((today - start).days + 1)]
    current, longest = streaks(days, today)
    reached = [{"project_id": m["entity_id"], "milestone": (m["fields"] or {}).get("milestone"),
                "seq": m["seq"], "at": iso(m["at"])} for m in got["milestones"]
               if m["at"].astimezone(tz).date() >= start]
    return {
        "period": period, "timezone": got["tz"], "from": start.isoformat(),
        "to": today.isoformat(), "days": series,
        "total_words": sum(n for d, n in days.items() if start <= d <= today),
        "streak": {"current": current, "longest": longest},
        "projects": {s: got["projects"].get(s, 0) for s in ("active", "completed", "archived")},
        "milestones": {"reached": len(reached), "items": reached},
    }


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ValueError, KeyError, OSError):  # a stored zone this machine does not know
        return ZoneInfo("UTC")


def valid_timezone(name: str) -> bool:
    if not name or len(name) > 64 or name.startswith("/") or ".." in name:
        return False
    try:
        ZoneInfo(name)
    except (ValueError, KeyError, OSError):
        return False
    return True
