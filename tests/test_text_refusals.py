"""A refused text update refuses only itself, whatever the order updates arrive in; the
document size limit holds per document on push and REST; updates outside the note's body
are refused."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from pycrdt import Doc, Map, Text

from syncd.errors import OpRejected
from syncd.limits import MAX_DOC_BYTES
from syncd.merge import Entity, apply_text
from tests.helpers import Api, Device, new_id, text_update
from tests.test_rebuild import run_cli

NOTE = uuid.UUID(int=7)


def text_op(d: Device, nid: str, update: bytes) -> dict[str, Any]:
    return d.op("note", nid, "text", field="body", update=base64.b64encode(update).decode())


def outcomes(reply: dict[str, Any]) -> list[tuple[str, str | None]]:
    return [(r["status"], r.get("code")) for r in reply["results"]]


def note(d: Device, nid: str) -> dict[str, Any]:
    r = d.get(f"/v1/notes/{nid}")
    assert r.status_code == 200, r.text[:300]
    return dict(r.json())


def events(db: psycopg.Connection[Any], user_id: str) -> int:
    row = db.execute("SELECT count(*) FROM events WHERE user_id = %s", (user_id,)).fetchone()
    assert row is not None
    return int(row[0])


def test_a_refused_update_takes_no_accepted_text_with_it(api: Api, pg_url: str) -> None:
    """u3 inserts NUL after u2's text and arrives first, before what it builds on: it is
    refused then, from its own bytes, and u2, arriving later, and u4, written after u2, are
    applied. (u3 used to wait inside the document and take u2 down when u2 arrived.)"""
    d = api.user()
    nid = new_id()
    u1, s1 = text_update(None, lambda t: t.insert(0, "zz"))
    u2, s2 = text_update(s1, lambda t: t.insert(2, "A"))
    u3, _ = text_update(s2, lambda t: t.insert(3, "B\x00"))
    u4, _ = text_update(s2, lambda t: t.insert(3, " more"))
    d.push([d.set("note", nid, title="t")])
    assert outcomes(d.push([text_op(d, nid, u3)])) == [("rejected", "validation")]
    assert outcomes(d.push([text_op(d, nid, u1), text_op(d, nid, u2)])) == [
        ("applied", None), ("applied", None)]
    assert outcomes(d.push([text_op(d, nid, u4)])) == [("applied", None)]
    assert note(d, nid)["body"] == "zzA more"
    r = run_cli(pg_url, "rebuild", "--verify")
    assert r.returncode == 0, r.stdout + r.stderr


def test_an_update_that_waits_is_applied_when_what_it_builds_on_comes(api: Api) -> None:
    d = api.user()
    nid = new_id()
    u1, s1 = text_update(None, lambda t: t.insert(0, "one"))
    u2, _ = text_update(s1, lambda t: t.insert(3, " two"))
    d.push([d.set("note", nid, title="t")])
    assert outcomes(d.push([text_op(d, nid, u2)])) == [("applied", None)]
    assert note(d, nid)["body"] == ""
    assert outcomes(d.push([text_op(d, nid, u1)])) == [("applied", None)]
    assert note(d, nid)["body"] == "one two"


def other_root_updates(state: bytes) -> list[bytes]:
    """Updates from a client that also writes outside the body: another Y.Text root, a map
    root, a map nested in the body's root, each beside a deletion of the body's text."""
    writes: list[Callable[[Doc[Any]], object]] = [
        lambda doc: doc.get("title", type=Text).insert(0, "t"),
        lambda doc: doc.get("meta", type=Map).__setitem__("k", "v"),
        lambda doc: doc.get("body", type=Map).__setitem__("inner", Map({"a": 1}))]
    out = []
    for write in writes:
        doc: Doc[Any] = Doc()
        doc.apply_update(state)
        before = doc.get_state()
        del doc.get("body", type=Text)[0:4]
        write(doc)
        out.append(doc.get_update(before))
    return out


def test_updates_outside_the_body_are_refused(api: Api, db: psycopg.Connection[Any]) -> None:
    d = api.user()
    nid = new_id()
    seed, state = text_update(None, lambda t: t.insert(0, "kept text"))
    d.push([d.set("note", nid, title="t"), text_op(d, nid, seed)])
    written = events(db, d.user_id)
    reply = d.push([text_op(d, nid, u) for u in other_root_updates(state)])
    assert outcomes(reply) == [("rejected", "outside_body")] * 3
    assert "'body'" in reply["results"][0]["message"]
    assert note(d, nid)["body"] == "kept text"
    assert events(db, d.user_id) == written


def words(size: int) -> str:
    """About `size` bytes of prose (a body PostgreSQL indexes: short, repeated words)."""
    line = "the quick brown fox jumps over the lazy dog\n"
    return line * (size // len(line))


def test_pushes_may_not_grow_a_document_past_the_limit(api: Api) -> None:
    """The limit holds per document, not per update: the second 3 MB push is refused, and
    the note takes smaller edits still."""
    d = api.user()
    nid = new_id()
    big = words(3_000_000)
    first, state = text_update(None, lambda t: t.insert(0, big))
    again, _ = text_update(state, lambda t: t.insert(0, big))
    small, _ = text_update(state, lambda t: t.insert(len(big), "the end"))
    d.push([d.set("note", nid, title="t")])
    assert outcomes(d.push([text_op(d, nid, first)])) == [("applied", None)]
    reply = d.push([text_op(d, nid, again), text_op(d, nid, small)])
    assert outcomes(reply) == [("rejected", "too_large"), ("applied", None)]
    assert str(MAX_DOC_BYTES) in reply["results"][0]["message"]
    body = note(d, nid)["body"]
    assert body == big + "the end"
    # a new note's first update is held to the limit too
    other = new_id()
    huge, _ = text_update(None, lambda t: t.insert(0, words(MAX_DOC_BYTES + 1000)))
    assert outcomes(d.push([d.set("note", other, title="t"), text_op(d, other, huge)])) == [
        ("applied", None), ("rejected", "too_large")]
    assert note(d, other)["body"] == ""


def test_rest_writes_may_not_grow_a_document_past_the_limit(
        api: Api, db: psycopg.Connection[Any]) -> None:
    """A REST body (at most 1 MiB) is diffed against the version the client read: one
    read before a device grew the note to 3.5 MB would take it past the limit."""
    d = api.user()
    r = d.api.post("/v1/notes", json={"title": "t"}, headers=d.headers)
    assert r.status_code == 201, r.text[:300]
    nid, read = r.json()["id"], r.json()["version"]
    big = words(3_500_000)
    grow, _ = text_update(None, lambda t: t.insert(0, big))
    assert outcomes(d.push([text_op(d, nid, grow)])) == [("applied", None)]
    written = events(db, d.user_id)
    r = d.api.patch(f"/v1/notes/{nid}", json={"body": words(900_000), "base_version": read},
                    headers=d.headers)
    assert r.status_code == 413, r.text[:300]
    assert r.json()["error"]["code"] == "too_large"
    assert r.json()["error"]["details"] == {"limit": MAX_DOC_BYTES}
    assert note(d, nid)["body"] == big
    assert events(db, d.user_id) == written
    # the note takes smaller edits still, merged with the device's text
    r = d.api.patch(f"/v1/notes/{nid}", json={"body": "the end", "base_version": read},
                    headers=d.headers)
    assert r.status_code == 200, r.text[:300]
    assert r.json()["body"] in ("the end" + big, big + "the end")  # concurrent inserts at 0
    assert note(d, nid)["body"] == r.json()["body"]


def test_a_refused_update_leaves_no_trace_in_the_document() -> None:
    """Refused after it was integrated (past the size limit, here while another update
    waits in the document): neither the state a batch saves or sends in a `put`, nor the
    text, holds it; what was applied before it does."""
    ent = Entity.new("note", NOTE, NOTE)
    first, s1 = text_update(None, lambda t: t.insert(0, "first"))
    second, s2 = text_update(s1, lambda t: t.insert(5, " second"))
    waits, _ = text_update(s2, lambda t: t.insert(12, " waits"))
    big, _ = text_update(s1, lambda t: t.insert(0, words(MAX_DOC_BYTES)))
    apply_text(ent, first)
    apply_text(ent, waits)  # builds on `second`, which has not come
    assert ent.whole is not None
    with pytest.raises(OpRejected) as refused:
        apply_text(ent, big)
    assert refused.value.code == "too_large"
    state = ent.document_state()
    assert state is not None and len(state) < 1000
    apply_text(ent, second)
    ent.flush_text()
    assert ent.body == "first second waits"
    assert ent.body_state is not None and len(ent.body_state) < 1000
