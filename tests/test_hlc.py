"""The push path's clock check: format, node, canonicalisation of clocks far ahead, and a
device's clocks raised above its previous one; the server clock's tick and observe."""

from __future__ import annotations

import uuid

from syncd.hlc import MAX_COUNTER, Clock, above, canonical, format_hlc, parse
from syncd.limits import MAX_CLOCK_SKEW_MS

NODE = str(uuid.UUID(int=7))
NOW = 1_795_000_000_000


def test_a_well_formed_clock_of_this_node_is_kept() -> None:
    clock = format_hlc(NOW, 42, NODE)
    assert canonical(clock, NODE, NOW) == clock
    assert canonical(format_hlc(NOW + MAX_CLOCK_SKEW_MS, 1, NODE), NODE, NOW) is not None


def test_a_clock_too_far_ahead_comes_back_to_the_server_clock() -> None:
    ahead = format_hlc(NOW + MAX_CLOCK_SKEW_MS + 1, 9, NODE)
    assert canonical(ahead, NODE, NOW) == format_hlc(NOW, 9, NODE)


def test_malformed_or_foreign_clocks_are_refused() -> None:
    good = format_hlc(NOW, 1, NODE)
    bad = [
        good.replace(NODE, str(uuid.UUID(int=8))),  # another device's
        good[:-1],                                   # truncated node
        "x" + good[1:],                              # a letter in the wall time
        good[:13] + ":" + good[14:],                 # wrong separator
        "¹" + good[1:],                              # a non-ASCII digit
        good[:14] + "00000a" + good[20:],            # a letter in the counter
        good + "0",
        "",
    ]
    for clock in bad:
        assert canonical(clock, NODE, NOW) is None, clock
    assert parse(good) == (NOW, 1, NODE)


def test_a_clock_not_above_the_previous_one_becomes_the_least_above_it() -> None:
    prev = format_hlc(NOW, 5, NODE)
    assert above(format_hlc(NOW, 6, NODE), prev) == format_hlc(NOW, 6, NODE)
    assert above(format_hlc(NOW + 1, 0, NODE), prev) == format_hlc(NOW + 1, 0, NODE)
    assert above(prev, prev) == format_hlc(NOW, 6, NODE)
    assert above(format_hlc(NOW - 60_000, 9, NODE), prev) == format_hlc(NOW, 6, NODE)
    assert above(format_hlc(NOW, 0, NODE), format_hlc(NOW, MAX_COUNTER, NODE)) == format_hlc(
        NOW + 1, 0, NODE)
    assert above(prev, None) == prev


def test_the_server_clock_ticks_above_what_it_observed() -> None:
    clock = Clock()
    far = format_hlc(4_000_000_000_000, 3, NODE)
    clock.observe(far)
    clock.observe("not a clock")
    first = clock.tick(NODE)
    assert first > far and parse(first) == (4_000_000_000_000, 4, NODE)
    assert clock.tick(NODE) > first
