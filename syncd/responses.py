"""Response structs: the shapes of what the REST handlers answer, for the OpenAPI document.

Handlers may still build plain dicts (rows straight from the database); the contract test
(tests/test_openapi_contract.py) checks every answer against these schemas, so they and
the handlers cannot drift apart. Not closed: a field added later is no breaking change.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal
from uuid import UUID

import msgspec

from syncd.messages import Event

Role = Literal["owner", "editor", "viewer"]
Status = Literal["active", "paused", "completed", "archived"]

# --- accounts and devices -----------------------------------------------------------------


class NewUser(msgspec.Struct):
    id: UUID
    email: str
    name: str


class Registered(msgspec.Struct):
    user: NewUser


class Tokens(msgspec.Struct):
    access_token: str
    refresh_token: str
    expires_in: int  # seconds the access token lives


class Session(Tokens):
    """A signed-in device: login's answer, and the OpenID code exchange's."""

    user: NewUser
    device_id: UUID


class User(msgspec.Struct):
    id: UUID
    email: str
    name: str
    timezone: str
    created_at: datetime
    email_verified: bool = False


class Me(msgspec.Struct):
    user: User
    device_id: UUID


class Device(msgspec.Struct):
    id: UUID
    name: str
    platform: str
    acked: int
    created_at: datetime
    last_seen_at: datetime
    last_ip: str | None
    user_agent: str | None
    revoked_at: datetime | None
    current: bool


class Devices(msgspec.Struct):
    devices: list[Device]


class DeviceStatus(msgspec.Struct):
    id: UUID
    name: str
    platform: str
    acked: int
    created_at: datetime
    last_seen_at: datetime
    revoked: bool
    current: bool


class SyncStatus(msgspec.Struct):
    cursor: int  # the caller's log head
    acked: int  # the calling device's highest consumed client_seq
    devices: list[DeviceStatus]


# --- notes and projects (syncd/views.py) --------------------------------------------------


class _Entity(msgspec.Struct):
    """What every Entity has (syncd/views.py): the derived values, clocks and app fields."""

    id: UUID
    deleted: bool
    word_count: int
    version: int
    created_at: datetime
    updated_at: datetime
    clocks: dict[str, str]
    owner_id: UUID
    meta: dict[str, Any]


class Note(_Entity):
    """A note as an Entity (docs/protocol.md): its fields, clocks and text."""

    title: str
    tags: list[str]
    pinned: bool
    favorite: bool
    project_id: UUID | None
    body: str
    body_state: bytes = b""  # the Yjs document state; lists leave it out


class Milestone(msgspec.Struct):
    seq: int | None
    at: str | None


class ProjectMember(msgspec.Struct):
    user_id: UUID
    role: Role


class Project(_Entity):
    title: str
    description: str
    word_goal: int
    status: Status
    deadline: date | None
    progress: float  # word_count / word_goal, at most 1
    milestones: dict[str, Milestone]  # by percent reached
    members: list[ProjectMember] = []


class NotePage(msgspec.Struct):
    notes: list[Note]
    next_cursor: str | None


class ProjectPage(msgspec.Struct):
    projects: list[Project]
    next_cursor: str | None


class SettingsView(msgspec.Struct):
    """A user's settings (syncd/views.py settings_view)."""

    id: UUID
    values: dict[str, Any]
    clocks: dict[str, str]
    version: int
    updated_at: datetime | None


class Snapshot(msgspec.Struct):
    cursor: int  # the log head the rest is as of
    notes: list[Note]
    projects: list[Project]
    settings: SettingsView


# --- history (syncd/history.py) -----------------------------------------------------------


class TextChange(msgspec.Struct):
    at: int  # the character the change starts at
    inserted: str  # cut to a snippet; *_chars say how much
    deleted: str
    inserted_chars: int
    deleted_chars: int


class Change(msgspec.Struct):
    seq: int
    op_id: int
    kind: str
    at: datetime
    hlc: str
    user_id: UUID
    device_id: UUID | None
    fields: dict[str, Any] | None = None  # a set's or a put's fields
    text: TextChange | None = None  # what a text op or a put did to the body


class HistoryPage(msgspec.Struct):
    events: list[Change]
    cursor: int  # the last op id of the page: the next page's `cursor`
    has_more: bool


class PastNote(msgspec.Struct):
    """A note rebuilt from the caller's log up to `seq`."""

    id: UUID
    seq: int
    title: str
    tags: list[str]
    pinned: bool
    favorite: bool
    project_id: UUID | None
    deleted: bool
    meta: dict[str, Any]
    version: int
    clocks: dict[str, str]
    created_at: datetime | None
    updated_at: datetime | None
    body: str
    word_count: int


class PastProject(msgspec.Struct):
    """A project rebuilt from the caller's log up to `seq`."""

    id: UUID
    seq: int
    title: str
    description: str
    word_goal: int
    status: Status
    deadline: date | None
    deleted: bool
    meta: dict[str, Any]
    version: int
    clocks: dict[str, str]
    created_at: datetime | None
    updated_at: datetime | None


# --- search (syncd/search.py) -------------------------------------------------------------


class Hit(msgspec.Struct):
    id: UUID
    title: str
    tags: list[str]
    project_id: UUID | None
    pinned: bool
    favorite: bool
    deleted: bool
    version: int
    updated_at: datetime
    title_hit: bool
    rank: float
    title_html: str  # the title, HTML-escaped, the terms in <mark>
    snippet: str  # an excerpt of the body around the first hit, likewise


class SearchResults(msgspec.Struct):
    results: list[Hit]
    query: str


# --- conflicts (syncd/conflicts.py) -------------------------------------------------------


class Write(msgspec.Struct):
    """One side of a conflict: a write of the field, by whom and when."""

    value: Any
    hlc: str | None
    device_id: UUID | None
    user_id: UUID
    seq: int | None = None  # theirs: the seq of the write in the caller's log


class Resolution(msgspec.Struct):
    choose: Literal["mine", "theirs", "value"]
    value: Any


class ConflictView(msgspec.Struct):
    id: UUID
    entity: Literal["note", "project", "settings"]
    entity_id: UUID
    field: str
    mine: Write
    theirs: Write
    winner: Literal["mine", "theirs"]
    created_at: datetime
    resolved_at: datetime | None
    resolution: Resolution | None


class Conflicts(msgspec.Struct):
    conflicts: list[ConflictView]


# --- export (syncd/export.py) -------------------------------------------------------------


class ExportedUser(msgspec.Struct):
    id: UUID
    email: str
    name: str
    timezone: str
    created_at: datetime
    email_verified_at: datetime | None


class ExportedDevice(msgspec.Struct):
    id: UUID
    name: str
    platform: str
    acked: int
    created_at: datetime
    last_seen_at: datetime
    revoked_at: datetime | None


class ExportedIdentity(msgspec.Struct):
    issuer: str
    subject: str
    created_at: datetime


class Membership(msgspec.Struct):
    project_id: UUID
    role: Role


class Export(msgspec.Struct):
    """Everything the caller owns (syncd/export.py), in the order it is streamed."""

    format: Literal["syncd-export"]
    version: int
    exported_at: datetime
    user: ExportedUser
    devices: list[ExportedDevice]
    identities: list[ExportedIdentity]  # the OpenID identities linked
    projects: list[Project]  # the caller's own
    memberships: list[Membership]  # in others' projects
    conflicts: list[ConflictView]
    settings: SettingsView
    notes: list[Note]  # the caller's own
    events: list[Event]  # the caller's whole log, as pull gives it


# --- sharing ------------------------------------------------------------------------------


class Member(msgspec.Struct):
    user_id: UUID
    role: Role
    email: str
    name: str
    added_at: datetime


class Members(msgspec.Struct):
    members: list[Member]


class Added(msgspec.Struct):
    user_id: UUID
    role: Literal["editor", "viewer"]


# --- operating ----------------------------------------------------------------------------


class Check(msgspec.Struct, omit_defaults=True):
    status: Literal["ok", "down"]
    latency_ms: float | None = None  # when ok
    error: str | None = None  # the exception's class, when down


class Checks(msgspec.Struct, omit_defaults=True):
    postgres: Check
    redis: Check | None = None  # when Redis is configured


class Health(msgspec.Struct):
    status: Literal["ok", "degraded"]
    checks: Checks
