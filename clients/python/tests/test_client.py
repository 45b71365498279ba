"""SyncClient offline: local edits, queries, the queued text ops, and restarts."""

from __future__ import annotations

import base64
import random
from pathlib import Path

import pytest
from conftest import offline_client
from pycrdt import Doc, Text

from syncd_client import NotFound, NotLoggedIn, SyncClient
from syncd_client.live import BACKOFF_CAP, backoff, ws_url


def replay(client: SyncClient, note_id: str) -> str:
    """The body a fresh replica gets from this device's queued text ops alone."""
    doc: Doc[Text] = Doc()
    body = doc.get("body", type=Text)
    for op in client.store.pending(10_000):
        if op["kind"] == "text" and op["id"] == note_id:
            assert op["field"] == "body"
            doc.apply_update(base64.b64decode(op["update"]))
    return str(body)


def test_edits_survive_a_restart(store_path: Path) -> None:
    c = offline_client(store_path)
    p = c.create_project(title="Novel", word_goal=1000)
    n = c.create_note(title="Ch. 1", tags=["draft"], project_id=p, body="It was a dark night.")
    c.set_body(n, "It was a dark and stormy night.")
    c.close()

    c = offline_client(store_path)
    c.insert_text(n, 0, "« ")
    c.delete_text(n, 2, 3)  # "It "
    note = c.note(n)
    assert note is not None
    assert note["body"] == "« was a dark and stormy night."
    assert (note["title"], note["tags"], note["project_id"]) == ("Ch. 1", ["draft"], p)
    assert replay(c, n) == note["body"]
    assert [o["client_seq"] for o in c.store.pending()] == list(range(1, 7))
    assert c.projects()[0]["word_goal"] == 1000
    c.close()


def test_set_body_queues_a_minimal_update(client: SyncClient) -> None:
    n = client.create_note(title="t", body="x" * 2000)
    client.set_body(n, "x" * 1000 + "!" + "x" * 1000)
    last = client.store.pending()[-1]
    assert last["kind"] == "text" and len(base64.b64decode(last["update"])) < 100
    assert replay(client, n) == "x" * 1000 + "!" + "x" * 1000
    before = client.pending()
    client.set_body(n, "x" * 1000 + "!" + "x" * 1000)
    assert client.pending() == before  # no change, no op


def test_queries(client: SyncClient) -> None:
    p = client.create_project(title="P")
    a = client.create_note(title="Alpha", tags=["home"], project_id=p)
    b = client.create_note(title="Beta", pinned=True, body="Buy milk")
    c = client.create_note(title="Gamma", tags=["home", "work"])
    client.delete_note(c)

    def ids(notes: list[dict[str, object]]) -> list[object]:
        return [x["id"] for x in notes]

    assert ids(client.notes()) == [b, a]  # pinned first, then most recent
    assert ids(client.notes(project_id=p)) == [a]
    assert ids(client.notes(tag="home")) == [a]
    assert ids(client.notes(tag="home", include_deleted=True)) == [c, a]
    assert ids(client.notes(pinned=True)) == [b]
    assert ids(client.notes(query="MILK")) == [b]
    assert ids(client.notes(query="alp")) == [a]
    client.restore_note(c)
    assert c in ids(client.notes(tag="work"))
    assert [x["id"] for x in client.projects()] == [p]


def test_refusals(client: SyncClient, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="colour"):
        client.create_note(colour="red")
    with pytest.raises(NotFound):
        client.update_note("00000000-0000-4000-8000-000000000000", title="x")
    fresh = SyncClient.open(tmp_path / "fresh.db", "http://127.0.0.1:9")
    with pytest.raises(NotLoggedIn):
        fresh.create_note(title="x")
    fresh.close()


def test_server_url_is_remembered(tmp_path: Path) -> None:
    SyncClient.open(tmp_path / "s.db", "http://127.0.0.1:8123").close()
    c = SyncClient.open(tmp_path / "s.db")
    assert c.server_url == "http://127.0.0.1:8123"
    c.close()


def test_backoff_and_ws_url() -> None:
    rng = random.Random(1)
    delays = [backoff(a, rng) for a in range(40)]
    assert all(0 <= d <= BACKOFF_CAP for d in delays) and max(delays) > 5
    assert ws_url("https://h:1", "a b") == "wss://h:1/v1/sync/ws?token=a%20b"


def test_live_keeps_retrying_without_a_server_and_stops(client: SyncClient) -> None:
    session = client.live()
    assert session.running and not session.connected.wait(0.3)
    client.stop()
    assert not session.running
