"""The fields of notes, projects and settings: defaults and validation of values a device
sends.

Pure; used by the merge when a `set` op arrives and by the REST views.

An app's own values are LWW registers like any other field, one per key, each with its
own clock, so two devices writing different keys both keep theirs: a note's or project's
`meta.<key>` fields (shown as one `meta` map in an Entity) and every key of a user's
`settings`. Values are JSON; null clears a key (its clock stays, so an older write
arriving later cannot bring it back). Bounds are in bytes of their JSON encoding.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import date
from typing import Any
from uuid import UUID

import msgspec

from syncd.errors import OpRejected
from syncd.limits import (
    MAX_DESCRIPTION,
    MAX_JSON_DEPTH,
    MAX_KEY,
    MAX_META_BYTES,
    MAX_META_KEYS,
    MAX_SETTING_BYTES,
    MAX_SETTINGS_BYTES,
    MAX_SETTINGS_KEYS,
    MAX_TAG,
    MAX_TAGS,
    MAX_TITLE,
    MAX_WORD_GOAL,
)

STATUSES = ("active", "paused", "completed", "archived")
META = "meta."  # the prefix of a meta key's field name

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
    "deadline": None,
    "deleted": False,
}
# Settings have no fixed fields: every key is the app's.
DEFAULTS: dict[str, dict[str, Any]] = {"note": NOTE_DEFAULTS, "project": PROJECT_DEFAULTS,
                                       "settings": {}}
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


def _date_or_null(v: Any) -> Any:
    if v is None:
        return None
    try:
        if isinstance(v, str) and len(v) == 10 and date.fromisoformat(v).isoformat() == v:
            return v
    except ValueError:
        pass
    raise ValueError("must be a date (YYYY-MM-DD) or null")


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
        "deadline": _date_or_null,
    },
}


_json = msgspec.json.Encoder()


def json_bytes(value: Any) -> int:
    return len(_json.encode(value))


def _key(v: str) -> str:
    if not 1 <= len(v) <= MAX_KEY:
        raise ValueError(f"must be 1 to {MAX_KEY} characters")
    return _text(v)


def _json_value(v: Any, depth: int = 0) -> Any:
    """A JSON value PostgreSQL's jsonb keeps as sent: no NUL, no NaN, not too deep."""
    if depth > MAX_JSON_DEPTH:
        raise ValueError(f"is nested more than {MAX_JSON_DEPTH} deep")
    if v is None or isinstance(v, bool):
        return v
    if isinstance(v, int):
        if not -(2**63) <= v < 2**63:
            raise ValueError("must hold integers of at most 64 bits")
        return v
    if isinstance(v, float):
        if not math.isfinite(v):
            raise ValueError("must be finite")
        return v
    if isinstance(v, str):
        return _text(v)
    if isinstance(v, list):
        return [_json_value(x, depth + 1) for x in v]
    if isinstance(v, dict) and all(isinstance(k, str) for k in v):
        return {_text(k): _json_value(x, depth + 1) for k, x in v.items()}
    raise ValueError("must be a JSON value")


def _app_value(limit: int) -> Callable[[Any], Any]:
    def check(v: Any) -> Any:
        v = _json_value(v)
        if json_bytes(v) > limit:
            raise ValueError(f"must be at most {limit} bytes of JSON")
        return v

    return check


_CHECK_META = _app_value(MAX_META_BYTES)
_CHECK_SETTING = _app_value(MAX_SETTING_BYTES)


def app_values(entity: str, fields: dict[str, Any]) -> dict[str, Any]:
    """The app's own values an entity holds, by key, cleared keys left out: a note's or
    project's meta map, or a user's settings."""
    if entity == "settings":
        return {k: v for k, v in fields.items() if v is not None}
    return {k[len(META):]: v for k, v in fields.items() if k.startswith(META) and v is not None}


def meta_fields(meta: dict[str, Any]) -> dict[str, Any]:
    """A meta map as the fields that write it (`{"color": 1}` → `{"meta.color": 1}`)."""
    return {META + k: v for k, v in meta.items()}


def check_total(entity: str, current: dict[str, Any], clean: dict[str, Any]) -> None:
    """Refuse a write that could leave an entity's app values past their bounds, whichever
    of its values win their key's clock: each key is counted with the larger of its value
    now and the op's, and the op's nulls clear nothing (one that loses would not)."""
    new = app_values(entity, clean)
    if not new:  # clearing keys only ever shrinks
        return
    merged = app_values(entity, current)
    for key, value in new.items():
        if key not in merged or json_bytes(value) > json_bytes(merged[key]):
            merged[key] = value
    keys, size = ((MAX_SETTINGS_KEYS, MAX_SETTINGS_BYTES) if entity == "settings"
                  else (MAX_META_KEYS, MAX_META_BYTES))
    what = "settings" if entity == "settings" else f"{entity}.meta"
    if len(merged) > keys:
        raise OpRejected("validation", f"{what} may hold at most {keys} keys")
    if json_bytes(merged) > size:
        raise OpRejected("validation", f"{what} may hold at most {size} bytes of JSON")


def _checker(entity: str, name: str) -> Callable[[Any], Any] | None:
    if entity == "settings":
        _key(name)
        return _CHECK_SETTING
    if name.startswith(META):
        _key(name[len(META):])
        return _CHECK_META
    return WRITABLE[entity].get(name)


def validate(entity: str, fields: dict[str, Any]) -> dict[str, Any]:
    """Return the fields in canonical form, or reject the op with `validation`."""
    clean: dict[str, Any] = {}
    for name, value in fields.items():
        try:
            check = _checker(entity, name)
        except ValueError as e:
            raise OpRejected("validation", f"{entity} key {name[:MAX_KEY]!r} {e}") from None
        if check is None:
            raise OpRejected("validation", f"unknown {entity} field {name!r}")
        try:
            clean[name] = check(value)
        except ValueError as e:
            raise OpRejected("validation", f"{entity}.{name} {e}") from None
    return clean
