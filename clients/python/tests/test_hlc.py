"""The hybrid logical clock: wire format, monotonicity, observing remote clocks."""

from __future__ import annotations

import pytest

from syncd_client.hlc import Clock, format_hlc, parse_hlc

NODE = "0f000000-0000-4000-8000-00000000000d"


def test_format_and_parse_round_trip() -> None:
    value = format_hlc(1763700000123, 2, NODE)
    assert value == f"1763700000123.000002.{NODE}"
    assert parse_hlc(value) == (1763700000123, 2, NODE)
    with pytest.raises(ValueError):
        parse_hlc("123.1.x")


def test_string_order_is_clock_order() -> None:
    values = [
        format_hlc(w, c, n)
        for w, c, n in [(1, 5, "b"), (2, 0, "a"), (2, 1, "a"), (2, 1, "b"), (1763700000000, 0, "a")]
    ]
    assert sorted(values) == values


def test_tick_is_strictly_increasing_when_wall_clock_stalls_or_goes_back() -> None:
    walls = iter([1000, 1000, 1000, 999, 2000])
    clock = Clock(NODE, now=lambda: next(walls))
    stamps = [clock.tick() for _ in range(5)]
    assert stamps == sorted(stamps) and len(set(stamps)) == 5
    assert parse_hlc(stamps[3]) == (1000, 3, NODE)
    assert parse_hlc(stamps[4]) == (2000, 0, NODE)


def test_counter_overflow_borrows_next_millisecond() -> None:
    clock = Clock(NODE, last=format_hlc(1000, 999_999, NODE), now=lambda: 1000)
    assert parse_hlc(clock.tick()) == (1001, 0, NODE)


def test_observe_moves_past_remote_clock() -> None:
    clock = Clock(NODE, now=lambda: 1000)
    remote = format_hlc(5000, 7, "ffff")
    clock.observe(remote)
    assert clock.tick() > remote
    clock.observe(format_hlc(10, 0, "a"))  # older: no effect
    assert parse_hlc(clock.last)[:2] == (5000, 8)


def test_last_survives_restart() -> None:
    clock = Clock(NODE, now=lambda: 1000)
    clock.tick()
    clock.tick()
    again = Clock(NODE, last=clock.last, now=lambda: 1000)
    assert again.tick() > clock.last
