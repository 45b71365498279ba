"""Wire structs the client reads and writes (docs/protocol.md), as msgspec Structs.

Decoding is lenient by design: unknown fields are ignored (the server may add
fields), ids stay strings, and `bytes` fields are base64 in JSON. Outgoing ops
are built as plain dicts by the outbox, since they are stored as JSON anyway.
Socket frames are a tagged union on `type`; tags are never reused.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from syncd_client.types import Json


class User(msgspec.Struct):
    id: str
    email: str
    name: str | None = None


class RegisterResponse(msgspec.Struct):
    user: User


class LoginResponse(msgspec.Struct):
    user: User
    device_id: str
    access_token: str
    refresh_token: str
    expires_in: int | None = None


class TokenResponse(msgspec.Struct):
    access_token: str
    refresh_token: str
    expires_in: int | None = None


class OpResult(msgspec.Struct):
    client_seq: int
    status: Literal["applied", "duplicate", "rejected"]
    code: str | None = None
    message: str | None = None
    hlc: str | None = None


class PushResponse(msgspec.Struct):
    acked: int
    cursor: int
    results: list[OpResult]


class Event(msgspec.Struct):
    """One entry of the user's log. `raw` keeps what the server sent, for notifications."""

    seq: int
    entity: str
    id: str
    kind: str
    hlc: str = ""
    device_id: str | None = None
    user_id: str | None = None
    at: str | None = None
    client_seq: int | None = None
    fields: dict[str, Any] | None = None
    field: str | None = None
    update: bytes | None = None
    clocks: dict[str, str] | None = None
    body_state: bytes | None = None
    deleted: bool | None = None


class PullResponse(msgspec.Struct):
    events: list[Json]
    cursor: int
    has_more: bool = False


class SnapshotResponse(msgspec.Struct):
    cursor: int
    notes: list[Json] = msgspec.field(default_factory=list)
    projects: list[Json] = msgspec.field(default_factory=list)
    settings: Json | None = None


class ErrorBody(msgspec.Struct):
    code: str
    message: str = ""
    details: dict[str, Any] | None = None


# --- sync socket frames, server → client ------------------------------------------------


class Frame(msgspec.Struct, tag_field="type", tag=str.lower):
    pass


class Welcome(Frame):
    head: int = 0


class Events(Frame):
    events: list[Json]
    cursor: int


class Ack(Frame):
    acked: int
    cursor: int
    results: list[OpResult]


class Pong(Frame):
    pass


class Resync(Frame):
    cursor: int = 0


class Error(Frame):
    code: str
    message: str = ""
    details: dict[str, Any] | None = None


ServerFrame = Welcome | Events | Ack | Pong | Resync | Error
decode_server_frame = msgspec.json.Decoder(ServerFrame)


def to_event(raw: Json) -> Event:
    """Convert one decoded JSON event (base64 strings become bytes)."""
    return msgspec.convert(raw, Event)


def hello(cursor: int) -> str:
    return msgspec.json.encode({"type": "hello", "cursor": cursor}).decode()


def push_frame(ops: list[Json]) -> str:
    return msgspec.json.encode({"type": "push", "ops": ops}).decode()


def ping() -> str:
    return '{"type":"ping"}'
