"""How a projection row looks on the wire: the flat Entity of docs/protocol.md."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from syncd.fields import NOTE_COLS, PROJECT_COLS


def progress(word_count: int, word_goal: int) -> float:
    return round(min(1.0, word_count / word_goal), 4) if word_goal > 0 else 0.0


def entity_view(kind: str, row: dict[str, Any], members: dict[UUID, str] | None = None,
                with_state: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {"id": row["id"]}
    for col in NOTE_COLS if kind == "note" else PROJECT_COLS:
        out[col] = row[col]
    out["word_count"] = row["word_count"]
    out["version"] = row["version"]
    out["created_at"] = row["created_at"]
    out["updated_at"] = row["updated_at"]
    out["clocks"] = row["clocks"]
    out["owner_id"] = row["owner_id"]
    out["meta"] = row["meta"]
    if kind == "note":
        out["body"] = row["body"]
        if with_state:
            out["body_state"] = row["body_state"] or b""
    else:
        out["progress"] = progress(row["word_count"], row["word_goal"])
        out["milestones"] = {
            k: {"seq": v.get("seq"), "at": v.get("at")} for k, v in row["milestones"].items()
        }
        if members is not None:
            out["members"] = [{"user_id": u, "role": r} for u, r in sorted(members.items())]
    return out


def settings_view(row: dict[str, Any] | None, user: UUID) -> dict[str, Any]:
    """A user's settings: `id` (the user's), `values` by key, `clocks`, `version`. A user
    who never set one has an empty map at version 0."""
    if row is None:
        return {"id": user, "values": {}, "clocks": {}, "version": 0, "updated_at": None}
    return {"id": row["id"], "values": row["fields"], "clocks": row["clocks"],
            "version": row["version"], "updated_at": row["updated_at"]}
