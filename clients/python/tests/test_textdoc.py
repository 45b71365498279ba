"""Note bodies: the minimal diff, and that the updates it produces reproduce the text."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pycrdt import Doc, Text

from syncd_client import textdoc

texts = st.text(alphabet=st.sampled_from("ab \n€😀é"), max_size=30)


def fresh_text(*updates: bytes) -> str:
    doc: Doc[Text] = Doc()
    body = doc.get("body", type=Text)
    for update in updates:
        if update:  # b"" is what an edit that changed nothing returns
            doc.apply_update(update)
    return str(body)


def test_common_affixes() -> None:
    assert textdoc.common_affixes("hello world", "hello brave world") == (6, 5)
    assert textdoc.common_affixes("aaa", "aa") == (2, 0)
    assert textdoc.common_affixes("", "x") == (0, 0)
    assert textdoc.common_affixes("same", "same") == (4, 0)


def test_replace_makes_one_small_edit() -> None:
    doc = textdoc.new_doc()
    first = textdoc.replace_text(doc, "hello world")
    second = textdoc.replace_text(doc, "hello brave world")
    assert fresh_text(first, second) == "hello brave world"
    # The second update carries the inserted text only, not the whole body again.
    assert b"brave" in second and b"hello" not in second
    assert textdoc.replace_text(doc, "hello brave world") == b""


@given(st.lists(texts, min_size=1, max_size=6))
def test_updates_replay_to_the_same_text(versions: list[str]) -> None:
    doc = textdoc.new_doc()
    updates = [textdoc.replace_text(doc, v) for v in versions]
    assert textdoc.text_of(doc) == versions[-1]
    assert fresh_text(*updates) == versions[-1]
    # Duplicates and a full state on top change nothing.
    assert fresh_text(*updates, *updates, doc.get_update()) == versions[-1]


@given(texts, st.data())
def test_insert_and_delete_by_character_index(base: str, data: st.DataObject) -> None:
    doc = textdoc.new_doc()
    updates = [textdoc.replace_text(doc, base)]
    i = data.draw(st.integers(0, len(base)))
    updates.append(textdoc.insert_text(doc, i, "😀x"))
    expected = base[:i] + "😀x" + base[i:]
    assert textdoc.text_of(doc) == expected
    j = data.draw(st.integers(0, len(expected)))
    n = data.draw(st.integers(0, len(expected) - j))
    updates.append(textdoc.delete_text(doc, j, n))
    expected = expected[:j] + expected[j + n :]
    assert textdoc.text_of(doc) == expected
    assert fresh_text(*updates) == expected


def test_concurrent_edits_merge_without_loss() -> None:
    a = textdoc.new_doc()
    base = textdoc.replace_text(a, "shopping: milk")
    b = textdoc.new_doc(a.get_update())
    ua = textdoc.replace_text(a, "shopping: milk, eggs")
    ub = textdoc.replace_text(b, "Shopping: milk")
    merged = fresh_text(base, ub, ua)
    assert merged == fresh_text(ua, base, ub) == "Shopping: milk, eggs"


def test_out_of_range_edits_raise() -> None:
    doc = textdoc.new_doc()
    textdoc.replace_text(doc, "abc")
    with pytest.raises(IndexError):
        textdoc.insert_text(doc, 4, "x")
    with pytest.raises(IndexError):
        textdoc.delete_text(doc, 2, 2)
    assert textdoc.text_of(doc) == "abc"
