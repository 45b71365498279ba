"""Remote events applied to the local projection, given as the dicts the server sends."""

from __future__ import annotations

import base64
from typing import Any

from conftest import DEVICE, OTHER, USER, note_of

from syncd_client import SyncClient, textdoc
from syncd_client.hlc import format_hlc

NOTE = "11111111-1111-4111-8111-111111111111"


def h(wall: int, node: str = OTHER, counter: int = 0) -> str:
    return format_hlc(wall, counter, node)


def ev(
    seq: int, kind: str, hlc: str, id: str = NOTE, entity: str = "note", **extra: Any
) -> dict[str, Any]:
    return {
        "seq": seq,
        "entity": entity,
        "id": id,
        "kind": kind,
        "hlc": hlc,
        "device_id": OTHER,
        "user_id": USER,
        "at": "2026-11-21T10:00:00Z",
        **extra,
    }


def test_set_is_lww_per_field_in_any_order(client: SyncClient) -> None:
    newer = ev(2, "set", h(2000), fields={"title": "new", "pinned": True})
    older = ev(1, "set", h(1000), fields={"title": "old", "tags": ["a"]})
    client.apply_events([newer])
    client.store.set("cursor", 0)  # deliver the older one afterwards (reordering)
    client.apply_events([older])
    note = client.note(NOTE)
    assert note is not None
    assert (note["title"], note["pinned"], note["tags"]) == ("new", True, ["a"])
    assert client.cursor == 1


def test_equal_wall_and_counter_greater_device_wins(client: SyncClient) -> None:
    client.apply_events(
        [
            ev(1, "set", h(1000, "b"), fields={"title": "from b"}),
            ev(2, "set", h(1000, "a"), fields={"title": "from a"}),
        ]
    )
    assert note_of(client, NOTE)["title"] == "from b"


def test_older_remote_event_does_not_overwrite_local_edit(client: SyncClient) -> None:
    client.apply_events([ev(1, "set", h(1000), fields={"title": "remote"})])
    client.update_note(NOTE, title="mine")  # local clock has observed h(1000): later
    client.apply_events([ev(2, "set", h(1500), fields={"title": "stale", "favorite": True})])
    note = client.note(NOTE)
    assert note is not None and note["title"] == "mine" and note["favorite"] is True


def test_events_at_or_below_cursor_are_skipped(client: SyncClient) -> None:
    client.apply_events([ev(1, "set", h(1000), fields={"title": "a"})])
    changed = client.apply_events([ev(1, "set", h(9000), fields={"title": "replayed"})])
    assert changed == [] and note_of(client, NOTE)["title"] == "a"


def test_delete_and_restore_are_lww(client: SyncClient) -> None:
    client.apply_events(
        [
            ev(1, "set", h(1000), fields={"title": "x"}),
            ev(2, "restore", h(3000)),
            ev(3, "delete", h(2000)),
        ]
    )
    assert note_of(client, NOTE)["deleted"] is False
    assert client.notes() != [] and client.notes(include_deleted=True) != []
    client.apply_events([ev(4, "delete", h(4000))])
    assert client.notes() == [] and len(client.notes(include_deleted=True)) == 1


def test_text_events_merge_and_are_idempotent(client: SyncClient) -> None:
    remote = textdoc.new_doc()
    u1 = textdoc.replace_text(remote, "hello world")
    u2 = textdoc.replace_text(remote, "hello brave world")
    b64 = [base64.b64encode(u).decode() for u in (u1, u2)]
    client.apply_events(
        [
            ev(1, "set", h(1000), fields={"title": "t"}),
            ev(2, "text", h(1001), field="body", update=b64[1]),
            ev(3, "text", h(1002), field="body", update=b64[0]),
            ev(4, "text", h(1003), field="body", update=b64[1]),
        ]
    )
    assert note_of(client, NOTE)["body"] == "hello brave world"
    client.set_body(NOTE, "hello brave new world")
    assert note_of(client, NOTE)["body"] == "hello brave new world"


def test_bad_text_update_is_skipped(client: SyncClient) -> None:
    client.apply_events(
        [
            ev(1, "set", h(1000), fields={"title": "t"}),
            ev(2, "text", h(1001), field="body", update="AAECAwQ="),
        ]
    )
    assert note_of(client, NOTE)["body"] == "" and client.cursor == 2


def test_put_merges_by_field_clocks_and_body_state(client: SyncClient) -> None:
    client.apply_events([ev(1, "set", h(5000), fields={"title": "newer title"})])
    doc = textdoc.new_doc()
    textdoc.replace_text(doc, "shared body")
    state = base64.b64encode(doc.get_update()).decode()
    client.apply_events(
        [
            ev(
                2,
                "put",
                h(6000),
                fields={"title": "older title", "tags": ["x"], "deleted": False},
                clocks={"title": h(4000), "tags": h(4000), "deleted": h(4000)},
                body_state=state,
            )
        ]
    )
    note = client.note(NOTE)
    assert note is not None
    assert (note["title"], note["tags"], note["body"]) == ("newer title", ["x"], "shared body")


def test_revoke_drops_the_entity(client: SyncClient) -> None:
    client.apply_events([ev(1, "set", h(1000), fields={"title": "shared"})])
    seen: list[list[str]] = []
    client.on_change(seen.append)
    client.apply_events([ev(2, "revoke", h(2000))])
    assert client.note(NOTE) is None and client.notes(include_deleted=True) == []
    assert seen == [[NOTE]]


def test_notification_events_are_kept(client: SyncClient) -> None:
    client.apply_events(
        [
            ev(1, "milestone", h(1000), entity="project", id=NOTE, fields={"percent": 50}),
            ev(2, "conflict", h(1001), fields={"field": "title"}),
        ]
    )
    assert [n["kind"] for n in client.notifications()] == ["milestone", "conflict"]
    assert client.notifications("milestone")[0]["fields"] == {"percent": 50}


def test_remote_clock_is_observed(client: SyncClient) -> None:
    future = h(9_000_000_000_000)
    client.apply_events([ev(1, "set", future, fields={"title": "far"})])
    client.update_note(NOTE, title="after")
    assert note_of(client, NOTE)["title"] == "after"
    assert client.store.pending()[-1]["hlc"] > future


def test_own_event_with_canonical_clock_rewrites_local_clock(client: SyncClient) -> None:
    id = client.create_note(title="skewed")
    [op] = client.outbox.next_batch()
    canonical = format_hlc(1000, 0, DEVICE)
    # The push response was lost: the event of our own op arrives with the canonical hlc.
    own = {
        **ev(1, "set", canonical, id=id, fields={"title": "skewed"}),
        "device_id": DEVICE,
        "client_seq": op["client_seq"],
    }
    client.apply_events([own])
    row = client.projection.row("note", id)
    assert row is not None and row.clocks["title"] == canonical
    # ...so a later write by another device now wins, as it does on every replica.
    client.apply_events([ev(2, "set", h(2000), id=id, fields={"title": "other"})])
    assert note_of(client, id)["title"] == "other"
