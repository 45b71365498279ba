"""Wire structs (PROTOCOL.md) as msgspec Structs, and the JSON / MessagePack codecs.

Schema evolution: a new field always gets a default; a tag or field name is never
reused for another meaning. `bytes` fields are base64 in JSON and raw in MessagePack.
"""

from __future__ import annotations

from typing import Any, Literal, TypeVar
from uuid import UUID

import msgspec

from syncd.errors import BadRequest

T = TypeVar("T")

EntityName = Literal["note", "project", "settings"]
OpName = Literal["set", "text", "delete", "restore"]


class Op(msgspec.Struct, frozen=True, omit_defaults=True):
    client_seq: int
    hlc: str
    entity: EntityName
    id: UUID
    kind: OpName
    fields: dict[str, Any] | None = None
    field: str | None = None
    update: bytes | None = None
    base: int | None = None


class PushRequest(msgspec.Struct, frozen=True):
    ops: list[Op]


class OpResult(msgspec.Struct, omit_defaults=True):
    client_seq: int
    status: Literal["applied", "duplicate", "rejected"]
    code: str | None = None
    message: str | None = None
    hlc: str | None = None


class PushResponse(msgspec.Struct):
    acked: int
    cursor: int
    results: list[OpResult]


class Event(msgspec.Struct, omit_defaults=True):
    seq: int
    entity: str
    id: UUID
    kind: str
    hlc: str
    user_id: UUID
    at: str
    device_id: UUID | None = None
    client_seq: int | None = None
    fields: dict[str, Any] | None = None
    field: str | None = None
    update: bytes | None = None
    clocks: dict[str, str] | None = None
    body_state: bytes | None = None


class PullResponse(msgspec.Struct):
    events: list[Event]
    cursor: int
    has_more: bool


# --- auth ---------------------------------------------------------------------------------


class RegisterRequest(msgspec.Struct, frozen=True):
    email: str
    password: str
    name: str = ""


class DeviceInfo(msgspec.Struct, frozen=True):
    name: str = "device"
    platform: str = "unknown"


class LoginRequest(msgspec.Struct, frozen=True):
    email: str
    password: str
    device: DeviceInfo = DeviceInfo()


class RefreshRequest(msgspec.Struct, frozen=True):
    refresh_token: str


class MemberRequest(msgspec.Struct, frozen=True):
    email: str
    role: Literal["editor", "viewer"]


# --- codecs -------------------------------------------------------------------------------

MSGPACK = "application/msgpack"
_json_encoder = msgspec.json.Encoder()
_msgpack_encoder = msgspec.msgpack.Encoder()


def encode(obj: Any, msgpack: bool = False) -> bytes:
    return _msgpack_encoder.encode(obj) if msgpack else _json_encoder.encode(obj)


def decode(body: bytes, typ: type[T], msgpack: bool = False) -> T:
    """Decode a request body into `typ`, turning every failure into a 400 that says where."""
    try:
        if msgpack:
            return msgspec.msgpack.decode(body, type=typ)
        return msgspec.json.decode(body, type=typ)
    except msgspec.ValidationError as e:
        raise BadRequest(f"request does not match the schema: {e}", code="invalid_request") from e
    except msgspec.DecodeError as e:
        kind = "MessagePack" if msgpack else "JSON"
        raise BadRequest(f"malformed {kind}: {e}", code="malformed_body") from e


# --- the sync socket (/v1/sync/ws) --------------------------------------------------------
# One JSON text frame (or MessagePack binary frame) per message, tagged by "type". Tags are
# never reused; new fields get defaults.


class SocketMsg(msgspec.Struct, tag_field="type", tag=str.lower, frozen=True):
    pass


class Hello(SocketMsg, frozen=True):
    cursor: int = 0


class Push(SocketMsg, frozen=True):
    ops: list[Op]


class Ping(SocketMsg, frozen=True):
    pass


class Welcome(SocketMsg, frozen=True):
    head: int


class Events(SocketMsg, frozen=True):
    events: list[Event]
    cursor: int


class Ack(SocketMsg, frozen=True):
    acked: int
    cursor: int
    results: list[OpResult]


class Pong(SocketMsg, frozen=True):
    pass


class Resync(SocketMsg, frozen=True):
    cursor: int


class Error(SocketMsg, frozen=True):
    code: str
    message: str
    details: dict[str, Any] = {}


ClientMsg = Hello | Push | Ping
ServerMsg = Welcome | Events | Ack | Pong | Resync | Error
CLIENT_TYPES = frozenset({"hello", "push", "ping"})


class Envelope(msgspec.Struct):
    """Just the tag: tells a malformed protocol message from something that is not one."""

    type: str


decode_client_json = msgspec.json.Decoder(ClientMsg)
decode_client_msgpack = msgspec.msgpack.Decoder(ClientMsg)
