"""syncd.yupdate: where a Yjs v1 update's items go and what text they insert, read from the
bytes that pycrdt (yrs) and stock Yjs (Node) encode, and nothing but MalformedUpdate for
bytes that are not one."""

from __future__ import annotations

import base64
import json
import subprocess
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pycrdt import Array, Doc, Map, Text, XmlElement, XmlFragment, XmlText

from syncd.yupdate import MalformedUpdate, Writes, read_update
from tests.node_env import ensure_node_modules, node_binary

Edit = Callable[[Doc[Any]], object]


def edit(doc: Doc[Any], change: Edit) -> bytes:
    """The update `change` makes to `doc`."""
    before = doc.get_state()
    change(doc)
    return doc.get_update(before)


def body(doc: Doc[Any]) -> Text:
    text: Text = doc.get("body", type=Text)
    return text


def seeded() -> Doc[Any]:
    doc: Doc[Any] = Doc(client_id=3)
    body(doc).insert(0, "hello world")
    return doc


def format_and_embed(doc: Doc[Any]) -> None:
    body(doc).insert(2, "X", {"bold": True})
    body(doc).insert_embed(1, {"image": "a.png"})
    body(doc).format(0, 3, {"italic": True})


def attribute(doc: Doc[Any]) -> None:
    # Y.Text attributes are map entries of the body (values of every lib0 `any` kind)
    doc.get("body", type=Map)["meta"] = [None, True, False, 7, -2**40, 1.5, "s", b"\x00\x01",
                                         {"k": [{"deep": [1, [2, [3]]]}]}]


def nul_typed_and_deleted(doc: Doc[Any]) -> None:
    body(doc).insert(3, "\x00")
    del body(doc)[3:4]  # in a transaction of its own: its content is encoded as a length


def everything(doc: Doc[Any]) -> None:
    format_and_embed(doc)
    attribute(doc)
    del body(doc)[0:2]


def map_in_body(doc: Doc[Any]) -> None:
    doc.get("body", type=Map)["inner"] = Map({"a": 1})


def xml(doc: Doc[Any]) -> None:
    frag = doc.get("prosemirror", type=XmlFragment)
    frag.children.append(XmlElement("p", {}, [XmlText("hi")]))


CASES: list[tuple[str, Edit, Writes]] = [
    ("insert", lambda d: body(d).insert(5, ","), Writes(frozenset(), False, False)),
    ("insert at start", lambda d: body(d).insert(0, ">"), Writes(frozenset(), False, False)),
    ("delete", lambda d: body(d).__delitem__(slice(0, 6)), Writes(frozenset(), False, False)),
    ("NUL", lambda d: body(d).insert(3, "a\x00b"), Writes(frozenset(), False, True)),
    ("NUL typed and deleted", nul_typed_and_deleted, Writes(frozenset(), False, False)),
    ("emoji", lambda d: body(d).insert(0, "😀 é"), Writes(frozenset(), False, False)),
    ("format and embed", format_and_embed, Writes(frozenset(), False, False)),
    ("attribute", attribute, Writes(frozenset({"body"}), False, False)),
    ("another root", lambda d: d.get("title", type=Text).insert(0, "t"),
     Writes(frozenset({"title"}), False, False)),
    ("a map root", lambda d: d.get("meta", type=Map).__setitem__("k", "v"),
     Writes(frozenset({"meta"}), False, False)),
    ("a nested type", map_in_body, Writes(frozenset({"body"}), True, False)),
    ("an array holding a map", lambda d: d.get("list", type=Array).append(Map({"a": 1})),
     Writes(frozenset({"list"}), True, False)),
    ("xml", xml, Writes(frozenset({"prosemirror"}), True, False)),
    ("a subdocument", lambda d: d.get("docs", type=Map).__setitem__("sub", Doc()),
     Writes(frozenset({"docs"}), True, False)),
]


@pytest.mark.parametrize(("name", "change", "writes"), CASES, ids=[c[0] for c in CASES])
def test_what_an_update_writes(name: str, change: Edit, writes: Writes) -> None:
    assert read_update(edit(seeded(), change)) == writes


def test_updates_made_by_yjs() -> None:
    """tests/node/yjs_updates.mjs makes updates with stock Yjs and says what each writes."""
    node_dir = ensure_node_modules()
    out = subprocess.run([node_binary(), str(node_dir / "yjs_updates.mjs")], cwd=node_dir,
                         capture_output=True, check=True, timeout=60).stdout
    cases = json.loads(out)
    assert len(cases) == 18
    for case in cases:
        expected = Writes(frozenset(case["roots"]), case["nested"], case["nul"])
        assert read_update(base64.b64decode(case["update"])) == expected, case["name"]


def test_a_whole_state_names_its_root_and_the_text_it_holds() -> None:
    doc = seeded()
    assert read_update(doc.get_update()) == Writes(frozenset({"body"}), False, False)
    body(doc).insert(0, "\x00")
    assert read_update(doc.get_update()).nul
    assert read_update(b"\x00\x00") == Writes(frozenset(), False, False)  # the empty update


def test_from_zero_when_a_clients_structs_start_at_clock_zero() -> None:
    """Only then would a fresh document integrate anything (a collab room's trial)."""
    doc = seeded()
    assert read_update(doc.get_update()).from_zero  # client 3 from its first keystroke
    later = edit(doc, lambda d: body(d).insert(5, ","))
    assert not read_update(later).from_zero
    other: Doc[Any] = Doc(client_id=4)
    other.apply_update(doc.get_update())
    first = edit(other, lambda d: body(d).insert(0, ">"))
    assert read_update(first).from_zero  # client 4's first, after client 3's clocks
    assert not read_update(edit(doc, lambda d: body(d).__delitem__(slice(0, 2)))).from_zero
    fresh: Doc[Any] = Doc()
    fresh.apply_update(later)  # nothing of it integrates: it waits for clocks 0-10
    assert str(body(fresh)) == ""


def test_an_item_inside_a_nested_type_is_nested() -> None:
    doc = seeded()
    edit(doc, map_in_body)
    inner = doc.get("body", type=Map)["inner"]
    writes = read_update(edit(doc, lambda _: inner.__setitem__("b", 2)))
    assert writes.nested and not writes.roots


def test_bytes_after_the_delete_set_are_ignored_as_yrs_does() -> None:
    update = edit(seeded(), lambda d: body(d).insert(0, "a"))
    Doc().apply_update(update + b"tail")
    assert read_update(update + b"tail") == read_update(update)


def test_every_truncation_is_malformed() -> None:
    update = edit(seeded(), everything)
    for end in range(len(update)):
        with pytest.raises(MalformedUpdate):
            read_update(update[:end])


@pytest.mark.parametrize("junk", [b"", b"\xff\xff\xff\xff", b"\x01\x02garbage",
                                  b"\x01\x01\x05\x00\x1f", b"\x01\x01\x05\x00\x2a\x00",
                                  b"\x01\x01\x05\x00\x04\x01\x02\xff\xfe\x00\x00",
                                  b"\x01\x01\x05\x00\x08\x01\x04\x62\x6f\x64\x79\x01\x80\x00"])
def test_junk_is_malformed(junk: bytes) -> None:
    with pytest.raises(MalformedUpdate):
        read_update(junk)


@settings(max_examples=500)
@given(st.binary(max_size=64))
def test_any_bytes_are_read_or_malformed(data: bytes) -> None:
    try:
        read_update(data)
    except MalformedUpdate:
        pass


@given(st.binary(min_size=1, max_size=64), st.data())
def test_corrupted_updates_are_read_or_malformed(noise: bytes, data: st.DataObject) -> None:
    update = bytearray(edit(seeded(), everything))
    at = data.draw(st.integers(0, len(update) - 1))
    update[at:at + len(noise)] = noise
    try:
        read_update(bytes(update))
    except MalformedUpdate:
        pass


def test_deeply_nested_values_are_read_without_recursion() -> None:
    depth = 100_000
    value = b"\x75\x01" * depth + b"\x7e"  # [[[…null…]]]
    update = (b"\x01\x01\x05\x00\x28\x01\x04body\x01k\x01" + value + b"\x00")
    assert read_update(update) == Writes(frozenset({"body"}), False, False)
