"""Exactly-once push: duplicates, gaps, atomic batches, consumed rejections, canonical clocks."""

from __future__ import annotations

import base64
from typing import Any

import psycopg

from tests.helpers import Api, new_id, text_update


def log_rows(db: psycopg.Connection[Any], user_id: str) -> int:
    row = db.execute("SELECT count(*) FROM events WHERE user_id = %s", (user_id,)).fetchone()
    assert row is not None
    return int(row[0])


def test_repush_of_applied_batch_changes_nothing(api: Api, db: psycopg.Connection[Any]) -> None:
    d = api.user()
    ops = [d.set("note", new_id(), title=f"n{i}") for i in range(5)]
    first = d.push(ops)
    assert first["acked"] == 5
    assert [r["status"] for r in first["results"]] == ["applied"] * 5
    rows = log_rows(db, d.user_id)

    again = d.push(ops)  # the response was lost: the device sends the same batch again
    assert again["acked"] == 5
    assert again["cursor"] == first["cursor"]
    assert [r["status"] for r in again["results"]] == ["duplicate"] * 5
    assert log_rows(db, d.user_id) == rows


def test_partly_duplicate_batch_applies_only_the_new_tail(api: Api) -> None:
    d = api.user()
    a = d.set("note", new_id(), title="a")
    b = d.set("note", new_id(), title="b")
    d.push([a])
    r = d.push([a, b])
    assert [x["status"] for x in r["results"]] == ["duplicate", "applied"]
    assert r["acked"] == 2
    assert {n["title"] for n in d.snapshot()["notes"]} == {"a", "b"}


def test_gap_is_refused_with_expected_and_writes_nothing(api: Api,
                                                         db: psycopg.Connection[Any]) -> None:
    d = api.user()
    d.push([d.set("note", new_id(), title="one")])
    next(d.seq)  # skip client_seq 2
    r = d.api.post("/v1/sync/push", json={"ops": [d.set("note", new_id(), title="three")]},
                   headers=d.headers)
    assert r.status_code == 409
    err = r.json()["error"]
    assert err["code"] == "client_seq_gap"
    assert err["details"]["expected"] == 2
    assert log_rows(db, d.user_id) == 1


def test_non_contiguous_batch_is_a_gap(api: Api, db: psycopg.Connection[Any]) -> None:
    d = api.user()
    first = d.set("note", new_id(), title="1")
    next(d.seq)
    third = d.set("note", new_id(), title="3")
    r = d.api.post("/v1/sync/push", json={"ops": [first, third]}, headers=d.headers)
    assert r.status_code == 409
    assert r.json()["error"]["details"]["expected"] == 1
    assert log_rows(db, d.user_id) == 0


def test_rejected_op_is_consumed_and_the_batch_proceeds(api: Api,
                                                        db: psycopg.Connection[Any]) -> None:
    d = api.user()
    good1, good2 = new_id(), new_id()
    ops = [
        d.set("note", good1, title="before"),
        d.set("note", new_id(), title="x" * 501),  # out of range
        d.op("note", new_id(), "delete"),  # no such note
        d.set("note", good2, title="after"),
    ]
    r = d.push(ops)
    statuses = [(x["status"], x.get("code")) for x in r["results"]]
    assert statuses == [("applied", None), ("rejected", "validation"),
                        ("rejected", "not_found"), ("applied", None)]
    assert r["acked"] == 4  # rejected ops are consumed: the queue is never blocked
    assert log_rows(db, d.user_id) == 2
    assert {n["id"] for n in d.snapshot()["notes"]} == {good1, good2}
    # The next op continues at acked + 1.
    assert d.push([d.set("note", good1, title="next")])["acked"] == 5


def test_batch_is_atomic_when_the_database_refuses_part_of_it(
        api: Api, db: psycopg.Connection[Any]) -> None:
    """A failure mid-transaction (here: the log's append-only trigger is made to fail for
    this user) must leave neither log rows, projection rows nor an advanced acked."""
    d = api.user()
    d.push([d.set("note", new_id(), title="ok")])
    db.execute(
        """CREATE OR REPLACE FUNCTION test_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
           BEGIN IF NEW.user_id = %s::uuid AND NEW.seq > 2 THEN
             RAISE EXCEPTION 'refused for the test'; END IF; RETURN NEW; END $$""".replace(
            "%s", f"'{d.user_id}'"))
    db.execute("CREATE TRIGGER test_refuse BEFORE INSERT ON events FOR EACH ROW "
               "EXECUTE FUNCTION test_refuse()")
    try:
        ops = [d.set("note", new_id(), title=f"t{i}") for i in range(3)]
        r = d.api.post("/v1/sync/push", json={"ops": ops}, headers=d.headers)
        assert r.status_code == 500
    finally:
        db.execute("DROP TRIGGER test_refuse ON events")
    assert log_rows(db, d.user_id) == 1
    status = d.get("/v1/sync/status").json()
    assert status["acked"] == 1 and status["cursor"] == 1
    assert len(d.snapshot()["notes"]) == 1
    # The device resends the same batch and it goes through whole.
    r2 = d.push(ops)
    assert [x["status"] for x in r2["results"]] == ["applied"] * 3


def test_clock_far_ahead_is_canonicalised_and_used_everywhere(api: Api) -> None:
    d = api.user()
    nid = new_id()
    far = d.hlc(wall_ms=4_000_000_000_000)  # year 2096
    r = d.push([d.set("note", nid, hlc=far, title="from the future")])
    canonical = r["results"][0]["hlc"]
    assert canonical != far and canonical < far
    assert canonical.endswith(d.device_id)
    ev = d.pull()[-1]
    assert ev["hlc"] == canonical
    assert d.snapshot()["notes"][0]["clocks"]["title"] == canonical
    # A later honest write wins over the canonicalised one.
    d.push([d.set("note", nid, title="now")])
    assert d.snapshot()["notes"][0]["title"] == "now"


def test_text_ops_merge_into_body_and_word_counts(api: Api) -> None:
    d = api.user()
    pid, nid = new_id(), new_id()
    upd, state = text_update(None, lambda t: t.insert(0, "one two three"))
    upd2, _ = text_update(state, lambda t: t.insert(len(str(t)), " four"))
    d.push([
        d.set("project", pid, title="P", word_goal=8),
        d.set("note", nid, project_id=pid),
        d.op("note", nid, "text", field="body", update=base64.b64encode(upd).decode()),
        d.op("note", nid, "text", field="body", update=base64.b64encode(upd2).decode()),
    ])
    snap = d.snapshot()
    note = snap["notes"][0]
    assert note["body"] == "one two three four"
    assert note["word_count"] == 4
    project = snap["projects"][0]
    assert project["word_count"] == 4
    assert project["progress"] == 0.5
    assert set(project["milestones"]) == {"25", "50"}
    kinds = [e["kind"] for e in d.pull()]
    assert kinds.count("milestone") == 2
    # Milestones fire once: more words past 50% only add 75 and 100 later.
    upd3, _ = text_update(_state_of(note), lambda t: t.insert(0, "a b c d "))
    d.push([d.op("note", nid, "text", field="body", update=base64.b64encode(upd3).decode())])
    assert [e["fields"]["milestone"] for e in d.pull() if e["kind"] == "milestone"] == [
        25, 50, 75, 100]


def _state_of(note: dict[str, Any]) -> bytes:
    return base64.b64decode(note["body_state"])


def test_msgpack_push_and_pull(api: Api) -> None:
    import msgspec

    d = api.user()
    nid = new_id()
    upd, _ = text_update(None, lambda t: t.insert(0, "raw bytes"))
    op = d.op("note", nid, "set", fields={"title": "mp"})
    op2 = d.op("note", nid, "text", field="body", update=upd)  # bytes, not base64
    body = msgspec.msgpack.encode({"ops": [op, op2]})
    r = d.api.post("/v1/sync/push", content=body, headers={
        **d.headers, "Content-Type": "application/msgpack", "Accept": "application/msgpack"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/msgpack")
    assert msgspec.msgpack.decode(r.content)["acked"] == 2
    r = d.get("/v1/sync/pull", headers={**d.headers, "Accept": "application/msgpack"})
    events = msgspec.msgpack.decode(r.content)["events"]
    assert events[1]["update"] == upd


def test_field_values_with_escapes_survive_the_log_verbatim(api: Api) -> None:
    d = api.user()
    nid = new_id()
    title = 'back\\slash\ttab\nnew\rline "quoted" \\N é 日本 \\u0000 \\\\'
    tags = ["\\t", "a\tb", "\\\\N"]
    d.push([d.set("note", nid, title=title, tags=tags)])
    [event] = d.pull()
    assert event["fields"] == {"title": title, "tags": tags}
    note = d.snapshot()["notes"][0]
    assert (note["title"], note["tags"]) == (title, tags)
