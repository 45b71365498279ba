"""syncd.yproto: the y-websocket codec, checked against pycrdt's own y-protocols helpers."""

from __future__ import annotations

import json

import pycrdt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncd import yproto
from syncd.yproto import (
    Auth,
    Awareness,
    AwarenessClients,
    AwarenessEntry,
    Message,
    ProtocolError,
    QueryAwareness,
    SyncStep1,
    SyncStep2,
    Update,
)

MAX_SAFE = 2**53 - 1


TextDoc = pycrdt.Doc[pycrdt.Text]


def doc_with_text(text: str) -> TextDoc:
    doc: TextDoc = pycrdt.Doc()
    body = doc.get("body", type=pycrdt.Text)
    body += text
    return doc


def body_of(doc: TextDoc) -> str:
    return str(doc.get("body", type=pycrdt.Text))


# -- lib0 primitives ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("num", "encoded"),
    [
        (0, b"\x00"),
        (1, b"\x01"),
        (127, b"\x7f"),
        (128, b"\x80\x01"),
        (300, b"\xac\x02"),
        (2**32, b"\x80\x80\x80\x80\x10"),
        (MAX_SAFE, b"\xff\xff\xff\xff\xff\xff\xff\x0f"),
    ],
)
def test_var_uint_known_bytes(num: int, encoded: bytes) -> None:
    assert yproto.write_var_uint(num) == encoded
    reader = yproto.Reader(encoded)
    assert reader.var_uint() == num
    assert reader.remaining == 0


@given(st.integers(min_value=0, max_value=MAX_SAFE))
def test_var_uint_round_trip_and_matches_pycrdt(num: int) -> None:
    encoded = yproto.write_var_uint(num)
    assert encoded == pycrdt.write_var_uint(num)
    assert yproto.Reader(encoded).var_uint() == num


@pytest.mark.parametrize("num", [-1, MAX_SAFE + 1])
def test_var_uint_out_of_range_is_refused(num: int) -> None:
    with pytest.raises(ProtocolError):
        yproto.write_var_uint(num)


def test_var_uint_beyond_safe_integer_or_overlong_is_refused() -> None:
    with pytest.raises(ProtocolError, match="out of range"):
        yproto.Reader(b"\xff" * 7 + b"\x7f").var_uint()  # 2**56 - 1
    with pytest.raises(ProtocolError, match="longer than 8 bytes"):
        yproto.Reader(b"\x80" * 8 + b"\x00").var_uint()


def test_overlong_but_short_var_uint_is_accepted_like_lib0() -> None:
    assert yproto.Reader(b"\x80\x00").var_uint() == 0


@given(st.text())
def test_var_string_counts_utf8_bytes(text: str) -> None:
    raw = text.encode("utf-8")
    encoded = yproto.write_var_string(text)
    assert encoded == yproto.write_var_uint(len(raw)) + raw
    assert yproto.Reader(encoded).var_string() == text


def test_var_string_non_ascii_length_is_in_bytes() -> None:
    assert yproto.write_var_string("é✓") == b"\x05" + "é✓".encode()


def test_invalid_utf8_string_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="UTF-8"):
        yproto.decode_frame(b"\x02\x00\x02\xc3\x28")


# -- messages ----------------------------------------------------------------------------

payloads = st.binary(max_size=64)
messages: st.SearchStrategy[Message] = st.one_of(
    st.builds(SyncStep1, payloads),
    st.builds(SyncStep2, payloads),
    st.builds(Update, payloads),
    st.builds(Awareness, payloads),
    st.builds(Auth, st.text(max_size=32)),
    st.just(QueryAwareness()),
)


@given(messages)
def test_message_round_trip(message: Message) -> None:
    assert yproto.decode_frame(yproto.encode(message)) == [message]


@given(st.lists(messages, min_size=1, max_size=8))
def test_several_messages_in_one_frame(batch: list[Message]) -> None:
    frame = b"".join(yproto.encode(m) for m in batch)
    assert yproto.decode_frame(frame) == batch


def test_known_bytes_of_each_message() -> None:
    assert yproto.encode_sync_step1(b"\x00") == b"\x00\x00\x01\x00"
    assert yproto.encode_sync_step2(b"\x00\x00") == b"\x00\x01\x02\x00\x00"
    assert yproto.encode_update(b"ab") == b"\x00\x02\x02ab"
    assert yproto.encode_awareness(b"\x00") == b"\x01\x01\x00"
    assert yproto.encode_permission_denied("no") == b"\x02\x00\x02no"
    assert yproto.encode_query_awareness() == b"\x03"


@given(payloads)
def test_encoding_equals_pycrdt_helpers(payload: bytes) -> None:
    # pycrdt exports no step 1 / step 2 builders for raw bytes; compose its public pieces
    sync = pycrdt.YMessageType.SYNC
    step1 = bytes((sync, pycrdt.YSyncMessageType.SYNC_STEP1)) + pycrdt.write_message(payload)
    step2 = bytes((sync, pycrdt.YSyncMessageType.SYNC_STEP2)) + pycrdt.write_message(payload)
    assert yproto.encode_sync_step1(payload) == step1
    assert yproto.encode_sync_step2(payload) == step2
    assert yproto.encode_update(payload) == pycrdt.create_update_message(payload)
    assert yproto.encode_awareness(payload) == pycrdt.create_awareness_message(payload)


def test_large_payload_equals_pycrdt() -> None:
    payload = bytes(range(256)) * 100  # a multi-byte length prefix
    assert yproto.encode_update(payload) == pycrdt.create_update_message(payload)
    assert yproto.decode_frame(yproto.encode_update(payload)) == [Update(payload)]


def test_real_document_sync_through_the_codec() -> None:
    source = doc_with_text("hello, world ✓")
    target: TextDoc = pycrdt.Doc()

    # the target asks with its state vector; pycrdt builds the same step 1
    step1 = yproto.encode_sync_step1(target.get_state())
    assert step1 == pycrdt.create_sync_message(target)
    [asked] = yproto.decode_frame(step1)
    assert isinstance(asked, SyncStep1)

    # the source answers through pycrdt's handler; we parse its reply
    reply = pycrdt.handle_sync_message(step1[1:], source)
    assert reply is not None
    [answer] = yproto.decode_frame(reply)
    assert answer == SyncStep2(source.get_update(asked.state_vector))
    assert isinstance(answer, SyncStep2)
    target.apply_update(answer.update)
    assert body_of(target) == "hello, world ✓"


def test_incremental_update_applies_via_pycrdt_handler() -> None:
    source = doc_with_text("abc")
    target: TextDoc = pycrdt.Doc()
    target.apply_update(source.get_update())
    before = source.get_state()
    body = source.get("body", type=pycrdt.Text)
    body.insert(1, "XY")
    frame = yproto.encode_update(source.get_update(before))
    [message] = yproto.decode_frame(frame)
    assert isinstance(message, Update)
    assert pycrdt.handle_sync_message(frame[1:], target) is None
    assert body_of(target) == "aXYbc"


def test_frame_of_step2_and_updates_builds_the_document() -> None:
    source = doc_with_text("one")
    frame = yproto.encode_sync_step2(source.get_update())
    state = source.get_state()
    body = source.get("body", type=pycrdt.Text)
    body += " two"
    frame += yproto.encode_update(source.get_update(state))
    frame += yproto.encode_query_awareness()
    target: TextDoc = pycrdt.Doc()
    parsed = yproto.decode_frame(frame)
    assert [type(m) for m in parsed] == [SyncStep2, Update, QueryAwareness]
    for message in parsed:
        if isinstance(message, SyncStep2 | Update):
            target.apply_update(message.update)
    assert body_of(target) == "one two"


# -- malformed input ---------------------------------------------------------------------


def test_empty_frame_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="empty"):
        yproto.decode_frame(b"")


@pytest.mark.parametrize(
    "frame",
    [
        yproto.encode_sync_step1(b"\x01\x02\x03"),
        yproto.encode_update(bytes(300)),
        yproto.encode_awareness(b"\x00"),
        yproto.encode_permission_denied("reason"),
    ],
)
def test_every_truncation_is_a_protocol_error(frame: bytes) -> None:
    for cut in range(1, len(frame)):
        with pytest.raises(ProtocolError):
            yproto.decode_frame(frame[:cut])


def test_truncated_second_message_is_a_protocol_error() -> None:
    frame = yproto.encode_update(b"abc") + yproto.encode_update(b"defg")[:-1]
    with pytest.raises(ProtocolError, match="truncated"):
        yproto.decode_frame(frame)


@pytest.mark.parametrize(
    ("frame", "match"),
    [
        (b"\x04", "unknown message type 4"),
        (b"\x80\x01", "unknown message type 128"),
        (b"\x00\x03\x00", "unknown sync message sub-type 3"),
        (b"\x02\x01\x00", "unknown auth message sub-type 1"),
        (yproto.encode_update(b"ok") + b"\x07", "unknown message type 7"),
    ],
)
def test_unknown_types_are_protocol_errors(frame: bytes, match: str) -> None:
    with pytest.raises(ProtocolError, match=match):
        yproto.decode_frame(frame)


def test_payload_limit() -> None:
    frame = yproto.encode_update(bytes(1025))
    assert yproto.decode_frame(frame, max_payload=1025) == [Update(bytes(1025))]
    with pytest.raises(ProtocolError, match="exceeds limit"):
        yproto.decode_frame(frame, max_payload=1024)
    # the limit is checked before the bytes are awaited: a declared 9 MiB is refused
    declared = b"\x00\x02" + yproto.write_var_uint(9 * 1024 * 1024)
    with pytest.raises(ProtocolError, match="exceeds limit"):
        yproto.decode_frame(declared)
    assert yproto.DEFAULT_MAX_PAYLOAD == 8 * 1024 * 1024


@given(st.binary(max_size=256))
def test_fuzz_arbitrary_bytes(data: bytes) -> None:
    try:
        result = yproto.decode_frame(data, max_payload=128)
    except ProtocolError:
        return
    assert result
    # whatever parses re-encodes to the same bytes, up to non-canonical varUints
    assert yproto.decode_frame(b"".join(map(yproto.encode, result))) == result


@given(st.binary(max_size=256))
def test_fuzz_awareness_bytes(data: bytes) -> None:
    try:
        entries = yproto.decode_awareness(data, max_payload=128)
    except ProtocolError:
        return
    assert yproto.decode_awareness(yproto.encode_awareness_update(entries)) == entries


@given(st.lists(messages, min_size=1, max_size=4), st.data())
def test_fuzz_corrupted_valid_frames(batch: list[Message], data: st.DataObject) -> None:
    frame = bytearray(b"".join(yproto.encode(m) for m in batch))
    index = data.draw(st.integers(0, len(frame) - 1))
    frame[index] = data.draw(st.integers(0, 255))
    try:
        yproto.decode_frame(bytes(frame))
    except ProtocolError:
        pass


# -- awareness ---------------------------------------------------------------------------

json_states = st.one_of(
    st.just("null"),
    st.dictionaries(st.text(max_size=8), st.integers() | st.text(max_size=8), max_size=3).map(
        lambda d: json.dumps(d, separators=(",", ":"), ensure_ascii=False)
    ),
)
entries_strategy = st.lists(
    st.builds(
        AwarenessEntry,
        st.integers(0, 2**32 - 1),
        st.integers(0, MAX_SAFE),
        json_states,
    ),
    max_size=5,
)


@given(entries_strategy)
def test_awareness_round_trip(entries: list[AwarenessEntry]) -> None:
    update = yproto.encode_awareness_update(entries)
    assert yproto.decode_awareness(update) == entries
    assert yproto.decode_frame(yproto.encode_awareness(update)) == [Awareness(update)]


def test_awareness_update_equals_pycrdt_encoding() -> None:
    doc: TextDoc = pycrdt.Doc(client_id=42)
    awareness = pycrdt.Awareness(doc)
    awareness.set_local_state({"user": {"name": "ada"}, "cursor": 3})
    ours = yproto.encode_awareness_update(
        [AwarenessEntry(42, 1, '{"user":{"name":"ada"},"cursor":3}')]
    )
    assert ours == awareness.encode_awareness_update([42])
    [entry] = yproto.decode_awareness(ours)
    assert (entry.client_id, entry.clock, json.loads(entry.state)) == (
        42,
        1,
        {"user": {"name": "ada"}, "cursor": 3},
    )


def test_removal_update_removes_clients_in_pycrdt_awareness() -> None:
    observer = pycrdt.Awareness(pycrdt.Doc[pycrdt.Text](client_id=1))
    announced = yproto.encode_awareness_update(
        [AwarenessEntry(7, 3, '{"name":"a"}'), AwarenessEntry(8, 0, '{"name":"b"}')]
    )
    observer.apply_awareness_update(announced, "peer")
    assert observer.states[7] == {"name": "a"}

    clients = AwarenessClients()
    clients.observe(yproto.decode_awareness(announced))
    removal = clients.removal()
    assert removal is not None
    assert yproto.decode_awareness(removal) == [
        AwarenessEntry(7, 4, "null"),
        AwarenessEntry(8, 1, "null"),
    ]
    observer.apply_awareness_update(removal, "server")
    assert set(observer.states) == {1}


def test_awareness_clients_tracks_latest_clock_and_own_removals() -> None:
    clients = AwarenessClients()
    assert clients.removal() is None
    clients.observe([AwarenessEntry(5, 2, "{}"), AwarenessEntry(6, 0, "{}")])
    clients.observe([AwarenessEntry(5, 1, '{"stale":true}')])  # older clock: ignored
    clients.observe([AwarenessEntry(6, 1, "null")])  # the client left by itself
    assert clients.clocks == {5: 2}
    assert yproto.decode_awareness(clients.removal() or b"") == [AwarenessEntry(5, 3, "null")]


@pytest.mark.parametrize("state", ["{", "NaN", "Infinity", "[" * 100_000])
def test_awareness_state_must_be_json(state: str) -> None:
    update = yproto.encode_awareness_update([AwarenessEntry(1, 0, state)])
    with pytest.raises(ProtocolError, match="not JSON"):
        yproto.decode_awareness(update)
    assert yproto.decode_awareness(update, check_json=False)[0].state == state


def test_awareness_trailing_and_truncated_bytes() -> None:
    update = yproto.encode_awareness_update([AwarenessEntry(1, 0, "{}")])
    with pytest.raises(ProtocolError, match="trailing"):
        yproto.decode_awareness(update + b"\x00")
    with pytest.raises(ProtocolError, match="truncated"):
        yproto.decode_awareness(update[:-1])
    with pytest.raises(ProtocolError, match="truncated"):
        yproto.decode_awareness(b"")
