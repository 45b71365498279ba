"""Wire structs (docs/protocol.md) as msgspec Structs, and the JSON / MessagePack codecs.

Schema evolution: a new field always gets a default; a tag or field name is never
reused for another meaning. `bytes` fields are base64 in JSON and raw in MessagePack.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeVar
from uuid import UUID

import msgspec

from syncd.errors import BadRequest
from syncd.limits import MAX_PASSWORD, MIN_PASSWORD

T = TypeVar("T")

# A string PostgreSQL can store: text and jsonb hold no NUL character. Every string a
# request struct carries is one, so a NUL is refused when the body is decoded, before any
# query sees it, and the OpenAPI document says so (a `pattern`).
NO_NUL = "^[^\\x00]*$"
Str = Annotated[str, msgspec.Meta(pattern=NO_NUL)]
UUID_PATTERN = "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
# What an account's email must look like (auth.normalise_email then lowercases it); the
# pattern is the whole rule, so the document and the server agree on every string.
_ADDR = "[^@\\x00-\\x20]+"
Email = Annotated[str, msgspec.Meta(pattern=f"^{_ADDR}@{_ADDR}\\.{_ADDR}$", max_length=320)]
Password = Annotated[str, msgspec.Meta(pattern=NO_NUL, min_length=MIN_PASSWORD,
                                       max_length=MAX_PASSWORD)]
Name = Annotated[str, msgspec.Meta(pattern=NO_NUL, max_length=200)]

EntityName = Literal["note", "project", "settings"]
OpName = Literal["set", "text", "delete", "restore"]


class Op(msgspec.Struct, frozen=True, omit_defaults=True):
    client_seq: int
    hlc: Str
    entity: EntityName
    id: UUID
    kind: OpName
    fields: dict[str, Any] | None = None
    field: Str | None = None
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
# Closed: a field the server would not read is refused (400), not silently dropped.


class RegisterRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    email: Email
    password: Password
    name: Name = ""


class DeviceInfo(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: Name = "device"
    platform: Name = "unknown"


class LoginRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    email: Email
    password: Str
    device: DeviceInfo = DeviceInfo()


class RefreshRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    refresh_token: Str


class MemberRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    email: Email
    role: Literal["editor", "viewer"]


class Empty(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A body that asks for nothing more than the path says (restore): `{}` or none."""


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
        raise schema_error(e) from e
    except msgspec.DecodeError as e:
        kind = "MessagePack" if msgpack else "JSON"
        raise BadRequest(f"malformed {kind}: {e}", code="malformed_body") from e
    except RecursionError:
        raise too_deep() from None


def schema_error(e: msgspec.ValidationError) -> BadRequest:
    """`validation` for a value outside its declared bounds (too long, a NUL, not an email
    address), as the domain checks name it; `invalid_request` for the wrong shape or type."""
    message, _, where = str(e).partition(" - at `$")
    if message.startswith("Expected `") and ", got `" not in message:
        return BadRequest(f"{where.strip('`.') or 'the body'}: {message}",
                          {"field": where.strip("`.")}, code="validation")
    return BadRequest(f"request does not match the schema: {e}", code="invalid_request")


def too_deep() -> BadRequest:
    """msgspec decodes nested values recursively and raises RecursionError past the
    interpreter's limit (about 1000 levels): a document that deep is no one's data."""
    return BadRequest("the document is nested too deeply", code="too_deep")


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
