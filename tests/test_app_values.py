"""The pure rules for an app's own values (fields.py): validation, the bounds in bytes,
and per-key LWW that gives the same state whatever order the ops arrive in."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncd.errors import OpRejected
from syncd.fields import app_values, check_total, validate
from syncd.rebuild import replay

USER = uuid.UUID(int=7)
NOTE = uuid.UUID(int=8)
AT = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize("entity, fields", [
    ("note", {"meta.x": float("nan")}),
    ("note", {"meta.x": 2**64}),
    ("note", {"meta.x": b"bytes"}),
    ("note", {"meta.x": {"a\x00": 1}}),
    ("note", {"meta.x": [[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]}),
    ("note", {"meta.": 1}),
    ("project", {"deadline": "2026-1-1"}),
    ("settings", {"": 1}),
    ("settings", {"k": "x" * 8 * 1024}),
])
def test_values_that_are_not_plain_bounded_json_are_refused(entity: str,
                                                            fields: dict[str, Any]) -> None:
    with pytest.raises(OpRejected) as e:
        validate(entity, fields)
    assert e.value.code == "validation"


def test_the_total_bound_counts_what_the_entity_would_hold() -> None:
    current = {"meta.a": "x" * 8000, "meta.b": "x" * 8000, "title": "t"}
    with pytest.raises(OpRejected):
        check_total("note", current, {"meta.c": "x" * 500})
    # A null in the same op may lose to a newer value: it makes no room...
    with pytest.raises(OpRejected):
        check_total("note", current, {"meta.a": None, "meta.c": "x" * 500})
    # ...nor does a smaller value, which may lose too; a clear applied before does.
    with pytest.raises(OpRejected):
        check_total("note", current, {"meta.a": "", "meta.c": "x" * 500})
    check_total("note", {**current, "meta.a": None}, {"meta.c": "x" * 500})
    check_total("note", current, {"meta.a": "y" * 8000})  # replaces in place
    check_total("note", current, {"meta.b": None})  # clearing alone always fits
    with pytest.raises(OpRejected):
        check_total("settings", {f"k{i}": i for i in range(200)}, {"more": 1})


writes = st.lists(
    st.tuples(st.sampled_from(["meta.a", "meta.b", "meta.c"]),
              st.one_of(st.none(), st.integers(0, 3), st.text(max_size=3)),
              st.integers(0, 50)),
    min_size=1, max_size=12)


def _rows(ops: list[tuple[str, Any, int]]) -> list[dict[str, Any]]:
    # A distinct clock per write (the device part tells equal walls apart), as HLCs are.
    return [{"op_id": i + 1, "entity": "note", "entity_id": NOTE, "kind": "set",
             "fields": {name: value}, "hlc": f"{1700000000000 + wall:013d}.{i:06d}.{USER}",
             "author_id": USER, "at": AT, "data": None}
            for i, (name, value, wall) in enumerate(ops)]


@given(writes, st.randoms(use_true_random=False))
def test_per_key_lww_does_not_depend_on_arrival_order(ops: list[tuple[str, Any, int]],
                                                      rng: Any) -> None:
    rows = _rows(ops)
    shuffled = rows[:]
    rng.shuffle(shuffled)
    a = replay(iter(rows)).entities[NOTE]
    b = replay(iter(shuffled)).entities[NOTE]
    assert app_values("note", a.fields) == app_values("note", b.fields)
    assert a.clocks == b.clocks
    # Each key holds the value of its greatest clock.
    for name in {n for n, _, _ in ops}:
        newest = max((r for r in rows if name in r["fields"]), key=lambda r: r["hlc"])
        assert a.fields[name] == newest["fields"][name]
