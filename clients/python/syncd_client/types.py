"""Vocabulary shared by the client modules: entity names, ids, JSON shapes, callbacks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, TypeAlias

EntityName = Literal["note", "project"]
OpKind = Literal["set", "text", "delete", "restore"]

EntityId: TypeAlias = str
"""A canonical lowercase UUID string, chosen by the device that creates the entity."""

Json: TypeAlias = dict[str, Any]
"""A decoded JSON object as it travels on the wire or sits in the store."""

ChangeCallback: TypeAlias = Callable[[list[EntityId]], None]
"""Called with the ids of entities whose local state changed because of remote events."""

ENTITIES: tuple[EntityName, ...] = ("note", "project")

NOTE_FIELDS = frozenset({"title", "tags", "pinned", "favorite", "project_id"})
PROJECT_FIELDS = frozenset({"title", "description", "word_goal", "status"})

NOTE_DEFAULTS: Json = {
    "title": "",
    "tags": [],
    "pinned": False,
    "favorite": False,
    "project_id": None,
}
PROJECT_DEFAULTS: Json = {"title": "", "description": "", "word_goal": 0, "status": "active"}


def writable_fields(entity: EntityName) -> frozenset[str]:
    """The LWW fields a device may `set` on an entity (PROTOCOL.md, Entities)."""
    return NOTE_FIELDS if entity == "note" else PROJECT_FIELDS


def defaults(entity: EntityName) -> Json:
    """Field values a freshly created entity starts from."""
    return dict(NOTE_DEFAULTS if entity == "note" else PROJECT_DEFAULTS)
