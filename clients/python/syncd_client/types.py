"""Vocabulary shared by the client modules: entity names, ids, JSON shapes, callbacks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, TypeAlias

EntityName = Literal["note", "project", "settings"]
OpKind = Literal["set", "text", "delete", "restore"]

EntityId: TypeAlias = str
"""A canonical lowercase UUID string, chosen by the device that creates the entity."""

Json: TypeAlias = dict[str, Any]
"""A decoded JSON object as it travels on the wire or sits in the store."""

ChangeCallback: TypeAlias = Callable[[list[EntityId]], None]
"""Called with the ids of entities whose local state changed because of remote events."""

ENTITIES: tuple[EntityName, ...] = ("note", "project")

NOTE_FIELDS = frozenset({"title", "tags", "pinned", "favorite", "project_id"})
PROJECT_FIELDS = frozenset({"title", "description", "word_goal", "status", "deadline"})
META = "meta."
"""The prefix of an app's own field on a note or project: `meta.<key>`, each key its own
LWW register (shown as one `meta` map in views)."""

NOTE_DEFAULTS: Json = {
    "title": "",
    "tags": [],
    "pinned": False,
    "favorite": False,
    "project_id": None,
}
PROJECT_DEFAULTS: Json = {
    "title": "",
    "description": "",
    "word_goal": 0,
    "status": "active",
    "deadline": None,
}


def writable(entity: EntityName, name: str) -> bool:
    """Whether a device may `set` this field (docs/protocol.md, Data model): a note's or project's
    own fields and `meta.<key>`; any key of the user's settings."""
    if entity == "settings":
        return True
    fixed = NOTE_FIELDS if entity == "note" else PROJECT_FIELDS
    return name in fixed or (name.startswith(META) and len(name) > len(META))


def defaults(entity: EntityName) -> Json:
    """Field values a freshly created entity starts from."""
    if entity == "settings":
        return {}
    return dict(NOTE_DEFAULTS if entity == "note" else PROJECT_DEFAULTS)


def meta_of(fields: Json) -> Json:
    """The meta map of a note's or project's fields (cleared keys left out)."""
    return {k[len(META):]: v for k, v in fields.items() if k.startswith(META) and v is not None}
