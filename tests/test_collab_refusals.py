"""A refused collab update refuses only itself, and roles take effect on open sockets.

Against a real syncd: a peer's update with NUL, into another root type, or growing the
document past MAX_DOC_BYTES is refused for that peer alone (permission-denied, then its
close), the other peers stay and the document is unharmed, in the room and in the log.
A member demoted to viewer is read-only from their next update, a removed one is closed,
on the node that made the change and on another one.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
from pycrdt import Map

from syncd import yproto
from syncd.limits import MAX_DOC_BYTES
from tests.fix_server import ServerProcess
from tests.helpers import Api, Device, new_id, text_update
from tests.test_bus import two_nodes
from tests.test_collab import YPeer, append, make_note, stored_text, wait_stored


def refused_alone(server: ServerProcess, owner: Device, nid: str, text: str,
                  send: Callable[[YPeer], None], code: int) -> None:
    """`send` on a fresh peer is refused: told, then closed with `code`; a bystander stays
    and the room and the stored document still hold `text`."""
    with YPeer(server, nid, owner.token) as bystander:
        bystander.sync()
        with YPeer(server, nid, owner.token) as bad:
            bad.sync()
            send(bad)
            assert bad.wait_closed() == code
            assert bad.denied, "the refused peer is told why"
        bystander.edit(append(" after"))
        with YPeer(server, nid, owner.token) as check:
            check.sync()
            assert check.wait_text(lambda s: s == text + " after")
        bystander.pump(timeout=0.2)
        assert bystander.close_code is None
        assert str(bystander.text) == text + " after"
    wait_stored(owner, nid, text + " after")


def test_an_update_with_nul_refuses_only_that_peer(server: ServerProcess, api: Api) -> None:
    owner = api.user("owner")
    nid = make_note(owner, "intact")
    refused_alone(server, owner, nid, "intact",
                  lambda bad: bad.edit(lambda t: t.insert(0, "evil\x00")), 4422)


def test_an_update_into_another_root_refuses_only_that_peer(server: ServerProcess,
                                                            api: Api) -> None:
    owner = api.user("owner")
    nid = make_note(owner, "intact")

    def other_root(bad: YPeer) -> None:
        before = bad.doc.get_state()
        bad.doc.get("hidden", type=Map)["secret"] = "outside the body"
        bad.send(yproto.encode_update(bad.doc.get_update(before)))

    refused_alone(server, owner, nid, "intact", other_root, 4422)


def test_collab_updates_past_the_document_limit_are_refused(
        server: ServerProcess, api: Api, db: psycopg.Connection[Any]) -> None:
    owner = api.user("owner")
    nid = make_note(owner, "big")
    chunk = "x" * (MAX_DOC_BYTES // 4)
    with YPeer(server, nid, owner.token) as bystander, \
            YPeer(server, nid, owner.token) as writer:
        bystander.sync(), writer.sync()
        sent = 0
        while writer.close_code is None:  # each fits a frame; together they cannot fit
            writer.edit(append(chunk))
            sent += 1
            writer.pump(timeout=0.3)
            assert sent <= 5
        assert writer.close_code == 1009 and writer.denied
        accepted = "big" + chunk * (sent - 1)
        assert bystander.wait_text(lambda s: len(s) == len(accepted)) == accepted
        assert bystander.close_code is None
    wait_stored(owner, nid, accepted)
    row = db.execute("SELECT length(body_state) FROM notes WHERE id = %s", (nid,)).fetchone()
    assert row is not None and row[0] <= MAX_DOC_BYTES


# --- live roles --------------------------------------------------------------------------


def shared_note(api: Api, owner: Device, member: Device, role: str = "editor") -> tuple[str,
                                                                                      str]:
    pid, nid = new_id(), new_id()
    upd, _ = text_update(None, lambda t: t.insert(0, "shared"))
    owner.push([owner.set("project", pid, title="Book"),
                owner.set("note", nid, title="c1", project_id=pid),
                owner.op("note", nid, "text", field="body",
                         update=base64.b64encode(upd).decode())])
    set_role(api, owner, pid, member, role)
    return pid, nid


def set_role(api: Api, owner: Device, pid: str, member: Device, role: str) -> None:
    r = api.post(f"/v1/projects/{pid}/members", json={"email": member.email, "role": role},
                 headers=owner.headers)
    assert r.status_code == 201, r.text


def authored(db: psycopg.Connection[Any], nid: str, user: str) -> int:
    row = db.execute("SELECT count(DISTINCT op_id) FROM events WHERE entity_id = %s "
                     "AND kind = 'text' AND author_id = %s", (nid, user)).fetchone()
    assert row is not None
    return int(row[0])


def demote_while_open(owner_node: ServerProcess, member_node: ServerProcess,
                      owner_api: Api, owner: Device, member: Device,
                      db: psycopg.Connection[Any]) -> None:
    pid, nid = shared_note(owner_api, owner, member)
    with YPeer(owner_node, nid, owner.token) as own, \
            YPeer(member_node, nid, member.token) as ed:
        own.sync(), ed.sync()
        ed.edit(append(" by editor"))
        assert own.wait_text(lambda s: s == "shared by editor")
        wait_stored(owner, nid, "shared by editor", timeout=20)
        written = authored(db, nid, member.user_id)
        assert written == 1

        set_role(owner_api, owner, pid, member, "viewer")
        # The role reaches the member's socket through the hub (and the bus across
        # nodes). Until then the probe, the state the room has already, changes nothing;
        # a viewer is refused even that.
        probe = yproto.encode_update(ed.doc.get_update())
        for _ in range(20):
            ed.send(probe)
            if ed.pump(lambda: bool(ed.denied), timeout=1):
                break
        assert ed.denied, "the demotion never reached the socket"
        ed.denied.clear()
        ed.edit(append("!"))  # a real edit: refused, and the socket stays open
        assert ed.pump(lambda: bool(ed.denied))
        own.edit(append(" by owner"))
        assert ed.pump(lambda: "by owner" in str(ed.text), 20)  # still reading
        assert own.close_code is None and ed.close_code is None
        # the room holds no demoted text: the owner's text has no "!" in it
        own.pump(timeout=0.3)
        assert str(own.text) == "shared by editor by owner"
        wait_stored(owner, nid, "shared by editor by owner", timeout=20)

        r = owner_api.delete(f"/v1/projects/{pid}/members/{member.user_id}",
                             headers=owner.headers)
        assert r.status_code == 204, r.text
        assert ed.wait_closed(20) == 4403
        assert own.close_code is None
    assert authored(db, nid, member.user_id) == written  # nothing after the demotion


def test_a_demoted_editor_is_read_only_at_once_and_a_removed_one_closed(
        server: ServerProcess, api: Api, db: psycopg.Connection[Any]) -> None:
    demote_while_open(server, server, api, api.user("owner"), api.user("editor"), db)


def test_roles_are_live_across_nodes(pg_url: str, tmp_root: Path, redis_url: str,
                                     db: psycopg.Connection[Any]) -> None:
    node_a, node_b = two_nodes(pg_url, tmp_root, redis_url)
    try:
        with Api(node_a.base_url) as api_a, Api(node_b.base_url) as api_b:
            owner = api_a.user("owner")
            member = api_b.login(api_b.register(), "editor")
            demote_while_open(node_a, node_b, api_a, owner, member, db)
    finally:
        node_a.stop()
        node_b.stop()


def test_updates_admitted_just_before_a_demotion_are_stored_and_no_peer_closed(
        pg_url: str, tmp_root: Path, db: psycopg.Connection[Any]) -> None:
    """The room admitted and relayed the editor's update; the demotion commits before the
    write-behind writes it (a coalescing window of seconds holds it back). The log records
    what the room admitted: stored under the editor's name, no peer closed; what the
    editor sends once the demotion reached the socket is refused and never stored."""
    node = ServerProcess(pg_url, tmp_root / f"race-{uuid.uuid4().hex[:8]}",
                         env={"SYNCD_COLLAB_COALESCE": "8"})
    node.start()
    try:
        with Api(node.base_url) as api:
            owner, member = api.user("owner"), api.user("editor")
            pid, nid = shared_note(api, owner, member)
            with YPeer(node, nid, owner.token) as own, YPeer(node, nid, member.token) as ed:
                own.sync(), ed.sync()
                ed.edit(append(" just before"))
                assert own.wait_text(lambda s: s == "shared just before")  # relayed
                assert stored_text(owner, nid) == "shared"  # still in the window
                set_role(api, owner, pid, member, "viewer")
                probe = yproto.encode_update(ed.doc.get_update())
                for _ in range(20):
                    ed.send(probe)
                    if ed.pump(lambda: bool(ed.denied), timeout=1):
                        break
                assert ed.denied, "the demotion never reached the socket"
                ed.denied.clear()
                ed.edit(append(" after"))  # refused: the socket is read-only now
                assert ed.pump(lambda: bool(ed.denied))
                wait_stored(owner, nid, "shared just before", timeout=30)
                own.pump(timeout=0.3), ed.pump(timeout=0.3)
                assert own.close_code is None and ed.close_code is None
                assert str(own.text) == "shared just before"
        # The race was run: the editor's text entered the log after the demotion did.
        rows = db.execute(
            "SELECT kind, author_id::text FROM events WHERE user_id = %s AND "
            "(entity_id = %s AND kind = 'text' OR entity_id = %s AND kind = 'member') "
            "ORDER BY seq", (owner.user_id, nid, pid)).fetchall()
        assert rows[-2:] == [("member", owner.user_id), ("text", member.user_id)], rows
        assert authored(db, nid, member.user_id) == 1
    finally:
        node.stop()
