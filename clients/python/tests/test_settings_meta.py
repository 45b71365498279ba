"""Settings and meta in the SDK: kept locally with a clock per key, queued as ops, merged
per key with what other devices wrote, and the same on the server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from e2e_util import device, new_email

from syncd_client import SyncClient

if TYPE_CHECKING:
    from tests.fix_server import ServerProcess


def test_meta_and_settings_are_local_first_with_a_clock_per_key(client: SyncClient) -> None:
    n = client.create_note(title="n", meta={"color": "red", "folder": {"path": ["a"]}})
    client.update_note(n, meta={"color": None, "rank": 3})
    assert client.note(n)["meta"] == {"folder": {"path": ["a"]}, "rank": 3}  # type: ignore[index]
    p = client.create_project(title="p", status="paused", deadline="2027-01-31",
                              meta={"client": "ACME"})
    view = client.project(p)
    assert view is not None
    assert (view["status"], view["deadline"], view["meta"]) == (
        "paused", "2027-01-31", {"client": "ACME"})
    client.set_settings({"theme": "dark", "font_size": 14})
    client.set_settings({"font_size": None})
    assert client.settings() == {"theme": "dark"}
    ops = client.store.pending()
    assert [(o["entity"], o["kind"]) for o in ops][-2:] == [("settings", "set")] * 2
    assert ops[-1]["fields"] == {"font_size": None} and ops[-1]["id"] == client.user_id
    assert {o["fields"].get("meta.color", "-") for o in ops if o["id"] == n} == {"red", None}
    with pytest.raises(ValueError):
        client.update_note(n, colour="red")


@pytest.fixture
def two(tmp_path: Path, server: ServerProcess) -> Iterator[tuple[SyncClient, SyncClient]]:
    email = new_email()
    a = device(tmp_path / "a.db", server.base_url, email, "a", register=True)
    b = device(tmp_path / "b.db", server.base_url, email, "b")
    yield a, b
    a.close()
    b.close()


def test_round_trip_two_devices_different_keys_both_survive(
        two: tuple[SyncClient, SyncClient]) -> None:
    a, b = two
    a.set_settings({"theme": "dark"})
    n = a.create_note(title="n", meta={"color": "red"})
    a.sync()
    b.bootstrap()
    assert b.settings() == {"theme": "dark"}
    assert b.note(n)["meta"] == {"color": "red"}  # type: ignore[index]
    # Both offline, each edits other keys; then both sync.
    a.set_settings({"font_size": 14})
    a.update_note(n, meta={"done": True})
    b.set_settings({"timezone": "Europe/Paris", "theme": "light"})
    b.update_note(n, meta={"color": "blue"})
    a.sync()
    b.sync()
    a.sync()
    want = {"theme": "light", "font_size": 14, "timezone": "Europe/Paris"}
    assert a.settings() == b.settings() == want
    assert a.note(n)["meta"] == b.note(n)["meta"] == {  # type: ignore[index]
        "color": "blue", "done": True}
    # ...and they equal the server's.
    server = a.api.snapshot()
    assert server.settings is not None and server.settings["values"] == want
    assert [x["meta"] for x in server.notes] == [{"color": "blue", "done": True}]
    # Clearing a key reaches the other device like any write.
    a.set_settings({"theme": None})
    a.sync()
    b.sync()
    assert b.settings() == {"font_size": 14, "timezone": "Europe/Paris"}


def test_an_oversize_value_is_rejected_and_recorded(two: tuple[SyncClient, SyncClient]) -> None:
    a, _ = two
    a.set_settings({"ok": 1, "big": "x" * 9000})
    a.sync()
    [rejection] = a.rejections()
    assert (rejection.entity, rejection.code) == ("settings", "validation")
    server = a.api.snapshot().settings
    assert server is not None and server["values"] == {}
