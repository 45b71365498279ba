"""merge.settle: a write of this device meets the clock the server's log gave it, and the
field ends as the server's projection has it. Pure: rows in memory, clocks by hand."""

from __future__ import annotations

from conftest import DEVICE, OTHER

from syncd_client import merge
from syncd_client.hlc import format_hlc
from syncd_client.store import Row

NOTE = "11111111-1111-4111-8111-111111111111"


def h(wall: int, node: str = OTHER, counter: int = 0) -> str:
    return format_hlc(wall, counter, node)


def row_with(title: str, clock: str) -> Row:
    row = Row("note", NOTE)
    merge.set_fields(row, {"title": title}, clock)
    return row


def test_a_canonical_clock_above_what_the_server_held_keeps_the_write() -> None:
    row = row_with("theirs", h(1000))
    merge.set_own(row, {"title": "mine"}, h(9000, DEVICE))
    merge.settle(row, {"title": "mine"}, h(9000, DEVICE), h(2000, DEVICE))
    assert (row.fields["title"], row.clocks["title"], row.confirmed) == (
        "mine", h(2000, DEVICE), {})


def test_a_canonical_clock_below_what_the_server_held_gives_the_field_back() -> None:
    row = row_with("theirs", h(3000))
    merge.set_own(row, {"title": "mine"}, h(9000, DEVICE))
    merge.settle(row, {"title": "mine"}, h(9000, DEVICE), h(2000, DEVICE))
    assert (row.fields["title"], row.clocks["title"], row.confirmed) == ("theirs", h(3000), {})


def test_a_server_value_that_lost_locally_meanwhile_is_kept_for_the_settling() -> None:
    row = row_with("first", h(1000))
    merge.set_own(row, {"title": "mine"}, h(9000, DEVICE))
    assert merge.set_fields(row, {"title": "later"}, h(3000)) == []  # loses to 9000 here
    assert row.fields["title"] == "mine"
    merge.settle(row, {"title": "mine"}, h(9000, DEVICE), h(2000, DEVICE))
    assert (row.fields["title"], row.clocks["title"]) == ("later", h(3000))


def test_an_earlier_write_settled_under_a_later_one_joins_what_the_server_holds() -> None:
    row = row_with("theirs", h(1000))
    merge.set_own(row, {"title": "one"}, h(8000, DEVICE))
    merge.set_own(row, {"title": "two"}, h(9000, DEVICE))
    merge.settle(row, {"title": "one"}, h(8000, DEVICE), h(2000, DEVICE))
    assert row.fields["title"] == "two"  # the later write still holds the field
    merge.settle(row, {"title": "two"}, h(9000, DEVICE), h(2000, DEVICE, 1))
    assert (row.fields["title"], row.clocks["title"]) == ("two", h(2000, DEVICE, 1))


def test_a_refused_write_gives_the_field_back() -> None:
    row = row_with("theirs", h(1000))
    merge.set_own(row, {"title": "mine"}, h(9000, DEVICE))
    merge.settle(row, {"title": "mine"}, h(9000, DEVICE), None)
    assert (row.fields["title"], row.clocks["title"], row.confirmed) == ("theirs", h(1000), {})


def test_a_server_value_above_the_local_write_takes_the_field_at_once() -> None:
    row = row_with("theirs", h(1000))
    merge.set_own(row, {"title": "mine"}, h(5000, DEVICE))
    merge.set_fields(row, {"title": "newer"}, h(6000))
    assert (row.fields["title"], row.confirmed) == ("newer", {})
    # The write's own result comes later; the log's clock for it decides, as on the server.
    merge.settle(row, {"title": "mine"}, h(5000, DEVICE), h(7000, DEVICE))
    assert row.fields["title"] == "mine"
