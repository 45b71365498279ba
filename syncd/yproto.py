"""The y-websocket wire format (y-protocols sync, awareness and auth), as a pure codec.

This module owns the bytes of `/v1/collab/{note_id}`: lib0 varUint / varUint8Array /
varString, the messages a binary WebSocket frame carries, and the awareness-update
payload. It does no I/O and knows nothing of notes or users; `ws_collab` drives it.

Layout (y-protocols `sync.js`, `awareness.js`, `auth.js`; y-websocket):

    sync       varUint(0) varUint(0 step1 | 1 step2 | 2 update) varUint8Array(payload)
    awareness  varUint(1) varUint8Array(awareness update)
    auth       varUint(2) varUint(0 permission denied) varString(reason)
    query      varUint(3)

A frame may hold several messages back to back (y-redis sends them so); the stock
`WebsocketProvider` reads only the first message of a frame, so send one per frame.
Anything malformed raises `ProtocolError` (close code 4409), never another exception.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

DEFAULT_MAX_PAYLOAD = 8 * 1024 * 1024
MAX_SAFE_INTEGER = 2**53 - 1  # lib0 reads numbers as JavaScript doubles

MESSAGE_SYNC = 0
MESSAGE_AWARENESS = 1
MESSAGE_AUTH = 2
MESSAGE_QUERY_AWARENESS = 3
SYNC_STEP1 = 0
SYNC_STEP2 = 1
SYNC_UPDATE = 2
AUTH_PERMISSION_DENIED = 0


class ProtocolError(ValueError):
    """Bytes that are not a y-websocket message (truncated, unknown type, too large)."""


@dataclass(frozen=True, slots=True)
class SyncStep1:
    state_vector: bytes


@dataclass(frozen=True, slots=True)
class SyncStep2:
    update: bytes


@dataclass(frozen=True, slots=True)
class Update:
    update: bytes


@dataclass(frozen=True, slots=True)
class Awareness:
    update: bytes  # an awareness update, see `decode_awareness`


@dataclass(frozen=True, slots=True)
class Auth:
    reason: str  # the only auth sub-type y-protocols defines: permission denied


@dataclass(frozen=True, slots=True)
class QueryAwareness:
    pass


Message = SyncStep1 | SyncStep2 | Update | Awareness | Auth | QueryAwareness


@dataclass(frozen=True, slots=True)
class AwarenessEntry:
    client_id: int
    clock: int
    state: str  # JSON text; "null" means the client is gone

    @property
    def removed(self) -> bool:
        return self.state == "null"


# -- lib0 primitives ---------------------------------------------------------------------


def write_var_uint(num: int) -> bytes:
    if not 0 <= num <= MAX_SAFE_INTEGER:
        raise ProtocolError(f"varUint out of range: {num}")
    out = bytearray()
    while num > 0x7F:
        out.append(0x80 | (num & 0x7F))
        num >>= 7
    out.append(num)
    return bytes(out)


def write_var_uint8_array(data: bytes) -> bytes:
    return write_var_uint(len(data)) + data


def write_var_string(text: str) -> bytes:
    return write_var_uint8_array(text.encode("utf-8"))


class Reader:
    """A cursor over bytes that reads lib0 values, raising `ProtocolError` on bad input."""

    __slots__ = ("_data", "_max_payload", "pos")

    def __init__(self, data: bytes, max_payload: int = DEFAULT_MAX_PAYLOAD) -> None:
        self._data = data
        self._max_payload = max_payload
        self.pos = 0

    @property
    def remaining(self) -> int:
        return len(self._data) - self.pos

    def var_uint(self) -> int:
        num = 0
        # 8 bytes carry 56 bits, enough for any value lib0 accepts; refuse longer padding
        for shift in range(0, 56, 7):
            if self.pos >= len(self._data):
                raise ProtocolError(f"truncated varUint at offset {self.pos}")
            byte = self._data[self.pos]
            self.pos += 1
            num |= (byte & 0x7F) << shift
            if byte < 0x80:
                if num > MAX_SAFE_INTEGER:
                    raise ProtocolError(f"varUint out of range at offset {self.pos}")
                return num
        raise ProtocolError(f"varUint longer than 8 bytes at offset {self.pos}")

    def var_uint8_array(self) -> bytes:
        length = self.var_uint()
        if length > self._max_payload:
            raise ProtocolError(f"payload of {length} bytes exceeds limit {self._max_payload}")
        if length > self.remaining:
            raise ProtocolError(
                f"truncated payload: {length} bytes declared, {self.remaining} left"
            )
        start = self.pos
        self.pos += length
        return self._data[start : self.pos]

    def var_string(self) -> str:
        raw = self.var_uint8_array()
        try:
            return raw.decode("utf-8")  # lib0 decodes with a fatal TextDecoder too
        except UnicodeDecodeError as exc:
            raise ProtocolError(f"invalid UTF-8 in string: {exc.reason}") from None


# -- messages ----------------------------------------------------------------------------


def decode_frame(data: bytes, *, max_payload: int = DEFAULT_MAX_PAYLOAD) -> list[Message]:
    """Every message in one binary frame, in order; at least one."""
    if not data:
        raise ProtocolError("empty frame")
    reader = Reader(bytes(data), max_payload)
    messages: list[Message] = []
    while reader.remaining:
        messages.append(_read_message(reader))
    return messages


def _read_message(reader: Reader) -> Message:
    kind = reader.var_uint()
    if kind == MESSAGE_SYNC:
        sub = reader.var_uint()
        if sub == SYNC_STEP1:
            return SyncStep1(reader.var_uint8_array())
        if sub == SYNC_STEP2:
            return SyncStep2(reader.var_uint8_array())
        if sub == SYNC_UPDATE:
            return Update(reader.var_uint8_array())
        raise ProtocolError(f"unknown sync message sub-type {sub}")
    if kind == MESSAGE_AWARENESS:
        return Awareness(reader.var_uint8_array())
    if kind == MESSAGE_AUTH:
        sub = reader.var_uint()
        if sub != AUTH_PERMISSION_DENIED:
            raise ProtocolError(f"unknown auth message sub-type {sub}")
        return Auth(reader.var_string())
    if kind == MESSAGE_QUERY_AWARENESS:
        return QueryAwareness()
    raise ProtocolError(f"unknown message type {kind}")


def encode_sync_step1(state_vector: bytes) -> bytes:
    return bytes((MESSAGE_SYNC, SYNC_STEP1)) + write_var_uint8_array(state_vector)


def encode_sync_step2(update: bytes) -> bytes:
    return bytes((MESSAGE_SYNC, SYNC_STEP2)) + write_var_uint8_array(update)


def encode_update(update: bytes) -> bytes:
    return bytes((MESSAGE_SYNC, SYNC_UPDATE)) + write_var_uint8_array(update)


def encode_awareness(update: bytes) -> bytes:
    return bytes((MESSAGE_AWARENESS,)) + write_var_uint8_array(update)


def encode_permission_denied(reason: str) -> bytes:
    return bytes((MESSAGE_AUTH, AUTH_PERMISSION_DENIED)) + write_var_string(reason)


def encode_query_awareness() -> bytes:
    return bytes((MESSAGE_QUERY_AWARENESS,))


def encode(message: Message) -> bytes:
    match message:
        case SyncStep1(state_vector):
            return encode_sync_step1(state_vector)
        case SyncStep2(update):
            return encode_sync_step2(update)
        case Update(update):
            return encode_update(update)
        case Awareness(update):
            return encode_awareness(update)
        case Auth(reason):
            return encode_permission_denied(reason)
        case QueryAwareness():
            return encode_query_awareness()


# -- awareness updates -------------------------------------------------------------------


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")  # JSON.parse refuses NaN and Infinity


def decode_awareness(
    update: bytes, *, max_payload: int = DEFAULT_MAX_PAYLOAD, check_json: bool = True
) -> list[AwarenessEntry]:
    """The entries of an awareness update; with `check_json`, each state must parse as JSON
    (peers `JSON.parse` it and would drop the whole frame otherwise)."""
    reader = Reader(bytes(update), max_payload)
    count = reader.var_uint()
    entries: list[AwarenessEntry] = []
    for _ in range(count):
        client_id = reader.var_uint()
        clock = reader.var_uint()
        state = reader.var_string()
        if check_json:
            try:
                json.loads(state, parse_constant=_reject_constant)
            except (ValueError, RecursionError) as exc:
                raise ProtocolError(f"awareness state of client {client_id} is not JSON") from exc
        entries.append(AwarenessEntry(client_id, clock, state))
    if reader.remaining:
        raise ProtocolError(f"{reader.remaining} trailing bytes after awareness update")
    return entries


def encode_awareness_update(entries: Iterable[AwarenessEntry]) -> bytes:
    items = list(entries)
    parts = [write_var_uint(len(items))]
    for entry in items:
        parts += (
            write_var_uint(entry.client_id),
            write_var_uint(entry.clock),
            write_var_string(entry.state),
        )
    return b"".join(parts)


@dataclass(slots=True)
class AwarenessClients:
    """The awareness clients one connection announced, with their latest clock.

    Feed it every awareness update the connection sends; when it goes away, `removal()`
    is the update to broadcast so that peers drop those clients at once rather than
    after y-protocols' 30 s timeout.
    """

    clocks: dict[int, int] = field(default_factory=dict)

    def observe(self, entries: Iterable[AwarenessEntry]) -> None:
        for entry in entries:
            if entry.removed:
                self.clocks.pop(entry.client_id, None)
            elif entry.clock >= self.clocks.get(entry.client_id, -1):
                self.clocks[entry.client_id] = entry.clock

    def removal(self) -> bytes | None:
        if not self.clocks:
            return None
        return removal_update(self.clocks)


def removal_update(clocks: Mapping[int, int]) -> bytes:
    """An awareness update that removes each client (state null, clock + 1)."""
    return encode_awareness_update(
        AwarenessEntry(client_id, min(clock + 1, MAX_SAFE_INTEGER), "null")
        for client_id, clock in clocks.items()
    )
