"""Note documents kept between transactions (syncd/docs.py): a note's next text write takes
the document the last one left, and only while the note's row holds the very state it was
kept with; a write on another node leaves the row with another state and the document is
built again."""

from __future__ import annotations

import base64
import uuid
from pathlib import Path

from syncd.docs import DocCache
from syncd.merge import Entity, apply_text
from tests.fix_server import ServerProcess
from tests.helpers import Api, Device, metric, new_id, text_update


def note_with(*words: str) -> Entity:
    """A note entity after a batch typed `words` into it and folded its document."""
    ent = Entity.new("note", uuid.uuid4(), uuid.uuid4())
    state = None
    for word in words:
        update, state = text_update(state, lambda t, w=word: t.insert(len(t), w))
        apply_text(ent, update)
    ent.flush_text()
    return ent


def loaded(ent: Entity, state: bytes | None) -> Entity:
    """The same note as the next transaction loads it, its row holding `state`."""
    return Entity("note", ent.id, ent.owner_id, dict(ent.fields), body_state=state)


def test_a_kept_document_is_taken_only_for_the_state_it_was_kept_with() -> None:
    cache = DocCache()
    ent = note_with("one ", "two")
    state, doc = ent.body_state, ent.doc
    assert doc is not None and state is not None
    cache.keep([ent])
    assert ent.doc is None and ent.document_state() == state  # given up, state unchanged
    again = loaded(ent, state)
    cache.take([again])
    assert again.doc is doc and (cache.hits, cache.misses) == (1, 0)
    update, _ = text_update(state, lambda t: t.insert(len(t), " three"))
    apply_text(again, update)  # a write goes on with it as with one built from the row
    again.flush_text()
    assert again.body == "one two three"

    cache.keep([again])
    elsewhere = loaded(again, note_with("another", " text").body_state)
    cache.take([elsewhere])
    assert elsewhere.doc is None and (cache.hits, cache.misses) == (1, 1)
    assert len(cache) == 0  # a stale document is dropped, not kept for later


def test_what_is_not_exactly_its_state_is_not_kept_and_the_cache_is_bounded() -> None:
    cache = DocCache(max_docs=2)
    elsewhere = note_with("first")
    assert elsewhere.body_state is not None
    after, _ = text_update(elsewhere.body_state, lambda t: t.insert(0, "y"))
    parked = Entity.new("note", uuid.uuid4(), uuid.uuid4())
    apply_text(parked, after)  # builds on what this note never received: it waits
    parked.flush_text()
    assert parked.whole is not None
    cache.keep([parked])
    assert len(cache) == 0 and parked.doc is not None
    notes = [note_with(f"n{i}") for i in range(3)]
    cache.keep(notes)
    assert len(cache) == 2  # the least recently kept went first
    first = loaded(notes[0], notes[0].body_state)
    cache.take([first])
    assert first.doc is None
    last = loaded(notes[2], notes[2].body_state)
    cache.take([last])
    assert last.doc is not None


def kept(node: ServerProcess, outcome: str) -> float:
    return metric(node.base_url, "syncd_note_documents_kept_total", f'outcome="{outcome}"')


def push_text(dev: Device, nid: str, state: bytes | None, word: str) -> bytes:
    update, state = text_update(state, lambda t: t.insert(len(t), word))
    r = dev.push([dev.op("note", nid, "text", field="body",
                         update=base64.b64encode(update).decode())])
    assert [x["status"] for x in r["results"]] == ["applied"], r
    return state


def body(dev: Device, nid: str) -> str:
    r = dev.api.get(f"/v1/notes/{nid}", headers=dev.headers)
    assert r.status_code == 200, r.text
    return str(r.json()["body"])


def test_a_write_on_another_node_makes_a_kept_document_stale(pg_url: str,
                                                             tmp_root: Path) -> None:
    tag = uuid.uuid4().hex[:8]
    nodes = [ServerProcess(pg_url, tmp_root / f"docs-{tag}-{i}") for i in range(2)]
    for node in nodes:
        node.start()
    try:
        a, b = nodes
        with Api(a.base_url) as api_a, Api(b.base_url) as api_b:
            dev_a = api_a.user("laptop")
            dev_b = api_b.login(dev_a.email, "phone")
            nid = new_id()
            dev_a.push([dev_a.set("note", nid, title="Chapter")])
            state = push_text(dev_a, nid, None, "one")
            taken, stale = kept(a, "taken"), kept(a, "stale")
            state = push_text(dev_a, nid, state, " two")  # a takes what it kept
            assert (kept(a, "taken"), kept(a, "stale")) == (taken + 1, stale)
            state = push_text(dev_b, nid, state, " three")  # the row moves on, on b
            push_text(dev_a, nid, state, " four")  # what a kept is one write behind
            assert (kept(a, "taken"), kept(a, "stale")) == (taken + 1, stale + 1)
            assert body(dev_a, nid) == body(dev_b, nid) == "one two three four"
    finally:
        for node in nodes:
            node.stop()
