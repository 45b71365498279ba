"""The fields of notes and projects: defaults and validation of values a device sends.

Pure; used by the merge when a `set` op arrives and by the REST views.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import UUID

from syncd.errors import OpRejected
from syncd.limits import MAX_DESCRIPTION, MAX_TAG, MAX_TAGS, MAX_TITLE, MAX_WORD_GOAL

STATUSES = ("active", "completed", "archived")

NOTE_DEFAULTS: dict[str, Any] = {
    "title": "",
    "tags": [],
    "pinned": False,
    "favorite": False,
    "project_id": None,
    "deleted": False,
}
PROJECT_DEFAULTS: dict[str, Any] = {
    "title": "",
    "description": "",
    "word_goal": 0,
    "status": "active",
    "deleted": False,
}
DEFAULTS = {"note": NOTE_DEFAULTS, "project": PROJECT_DEFAULTS}
# The LWW fields, each a column of the projection row, in column order.
NOTE_COLS = tuple(NOTE_DEFAULTS)
PROJECT_COLS = tuple(PROJECT_DEFAULTS)


def _text(v: str) -> str:
    # PostgreSQL stores NUL in neither text nor jsonb.
    if "\x00" in v:
        raise ValueError("must not contain NUL characters")
    return v


def _string(limit: int) -> Callable[[Any], Any]:
    def check(v: Any) -> Any:
        if not isinstance(v, str):
            raise ValueError("must be a string")
        if len(v) > limit:
            raise ValueError(f"must be at most {limit} characters")
        return _text(v)

    return check


def _bool(v: Any) -> Any:
    if not isinstance(v, bool):
        raise ValueError("must be a boolean")
    return v


def _tags(v: Any) -> Any:
    if not isinstance(v, list) or not all(isinstance(t, str) for t in v):
        raise ValueError("must be a list of strings")
    if len(v) > MAX_TAGS or any(len(t) > MAX_TAG for t in v):
        raise ValueError(f"at most {MAX_TAGS} tags of at most {MAX_TAG} characters")
    return [_text(t) for t in v]


def _uuid_or_null(v: Any) -> Any:
    if v is None:
        return None
    if not isinstance(v, str):
        raise ValueError("must be a UUID string or null")
    try:
        return str(UUID(v))  # canonical lowercase form
    except ValueError:
        raise ValueError("must be a UUID string or null") from None


def _word_goal(v: Any) -> Any:
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= MAX_WORD_GOAL:
        raise ValueError(f"must be an integer from 0 to {MAX_WORD_GOAL}")
    return v


def _status(v: Any) -> Any:
    if v not in STATUSES:
        raise ValueError(f"must be one of {', '.join(STATUSES)}")
    return v


WRITABLE: dict[str, dict[str, Callable[[Any], Any]]] = {
    "note": {
        "title": _string(MAX_TITLE),
        "tags": _tags,
        "pinned": _bool,
        "favorite": _bool,
        "project_id": _uuid_or_null,
    },
    "project": {
        "title": _string(MAX_TITLE),
        "description": _string(MAX_DESCRIPTION),
        "word_goal": _word_goal,
        "status": _status,
    },
}


def validate(entity: str, fields: dict[str, Any]) -> dict[str, Any]:
    """Return the fields in canonical form, or reject the op with `validation`."""
    spec = WRITABLE[entity]
    clean: dict[str, Any] = {}
    for name, value in fields.items():
        check = spec.get(name)
        if check is None:
            raise OpRejected("validation", f"unknown {entity} field {name!r}")
        try:
            clean[name] = check(value)
        except ValueError as e:
            raise OpRejected("validation", f"{entity}.{name} {e}") from None
    return clean
