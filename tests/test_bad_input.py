"""Malformed requests get a 4xx with a machine-readable code and write nothing;
well-formed ops the domain refuses are `rejected` with a code."""

from __future__ import annotations

import base64
import time
from typing import Any

import jwt
import psycopg
import pytest

from tests.fix_server import TEST_SECRET
from tests.helpers import Api, Device, new_id


def rows(db: psycopg.Connection[Any], user_id: str) -> tuple[int, int]:
    ev = db.execute("SELECT count(*) FROM events WHERE user_id = %s", (user_id,)).fetchone()
    notes = db.execute("SELECT count(*) FROM notes WHERE owner_id = %s", (user_id,)).fetchone()
    assert ev and notes
    return int(ev[0]), int(notes[0])


def post_raw(d: Device, content: bytes, ctype: str = "application/json") -> Any:
    return d.api.post("/v1/sync/push", content=content,
                      headers={**d.headers, "Content-Type": ctype})


def op(d: Device, **over: Any) -> dict[str, Any]:
    base = {"client_seq": 1, "hlc": d.hlc(), "entity": "note", "id": new_id(), "kind": "set",
            "fields": {"title": "x"}}
    base.update(over)
    return base


MALFORMED: list[tuple[str, Any, int, str]] = [
    ("not json", b"{not json", 400, "malformed_body"),
    ("not the push shape", b'{"operations": []}', 400, "invalid_request"),
    ("ops not a list", b'{"ops": 3}', 400, "invalid_request"),
]


@pytest.mark.parametrize(("name", "body", "status", "code"), MALFORMED,
                         ids=[m[0] for m in MALFORMED])
def test_malformed_bodies(api: Api, db: psycopg.Connection[Any], name: str, body: bytes,
                          status: int, code: str) -> None:
    d = api.user()
    r = post_raw(d, body)
    assert r.status_code == status
    assert r.json()["error"]["code"] == code
    assert rows(db, d.user_id) == (0, 0)


BAD_OPS: list[tuple[str, dict[str, Any], str]] = [
    ("unknown entity", {"entity": "folder"}, "invalid_request"),
    ("unknown kind", {"kind": "upsert"}, "invalid_request"),
    ("non-uuid id", {"id": "note-1"}, "invalid_request"),
    ("client_seq not int", {"client_seq": "1"}, "invalid_request"),
    ("malformed hlc", {"hlc": "yesterday"}, "invalid_hlc"),
    ("fields not an object", {"fields": ["title"]}, "invalid_request"),
    ("corrupt base64", {"kind": "text", "field": "body", "update": "!!not base64!!"},
     "invalid_request"),
]


@pytest.mark.parametrize(("name", "over", "code"), BAD_OPS, ids=[b[0] for b in BAD_OPS])
def test_malformed_ops_refuse_the_whole_request(api: Api, db: psycopg.Connection[Any],
                                                name: str, over: dict[str, Any],
                                                code: str) -> None:
    d = api.user()
    good = op(d)
    bad = op(d, **{"client_seq": 2, **over})
    r = d.api.post("/v1/sync/push", json={"ops": [good, bad]}, headers=d.headers)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == code
    assert rows(db, d.user_id) == (0, 0)  # not even the good op


def test_hlc_of_another_device_is_refused(api: Api, db: psycopg.Connection[Any]) -> None:
    d = api.user()
    other = new_id()
    r = d.api.post("/v1/sync/push", json={"ops": [op(d, hlc=f"{int(time.time()*1000):013d}"
                                                       f".000000.{other}")]},
                   headers=d.headers)
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "invalid_hlc"
    assert rows(db, d.user_id) == (0, 0)


def test_oversize_batch_by_count(api: Api, db: psycopg.Connection[Any]) -> None:
    d = api.user()
    ops = [op(d, client_seq=i + 1, id=new_id()) for i in range(1001)]
    r = d.api.post("/v1/sync/push", json={"ops": ops}, headers=d.headers)
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "too_large"
    assert rows(db, d.user_id) == (0, 0)


def test_oversize_batch_by_bytes(api: Api, db: psycopg.Connection[Any]) -> None:
    d = api.user()
    blob = base64.b64encode(b"\0" * (9 * 1024 * 1024)).decode()
    r = d.api.post("/v1/sync/push", json={"ops": [op(d, kind="text", field="body",
                                                     update=blob)]}, headers=d.headers)
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "too_large"
    assert rows(db, d.user_id) == (0, 0)


REFUSED: list[tuple[str, dict[str, Any], str]] = [
    ("unknown field", {"fields": {"colour": "red"}}, "validation"),
    ("title too long", {"fields": {"title": "t" * 501}}, "validation"),
    ("title wrong type", {"fields": {"title": 5}}, "validation"),
    ("NUL in title", {"fields": {"title": "a\u0000b"}}, "validation"),
    ("NUL in a tag", {"fields": {"tags": ["a\u0000"]}}, "validation"),
    ("tags wrong type", {"fields": {"tags": "a,b"}}, "validation"),
    ("too many tags", {"fields": {"tags": [str(i) for i in range(51)]}}, "validation"),
    ("pinned not bool", {"fields": {"pinned": "yes"}}, "validation"),
    ("project_id not uuid", {"fields": {"project_id": "p1"}}, "validation"),
    ("project_id unknown", {"fields": {"project_id": new_id()}}, "not_found"),
    ("negative word goal", {"entity": "project", "fields": {"word_goal": -1}}, "validation"),
    ("bad status", {"entity": "project", "fields": {"status": "done"}}, "validation"),
    ("text of missing note", {"kind": "text", "field": "body",
                              "update": base64.b64encode(b"\x00\x00").decode()}, "not_found"),
    ("delete of missing note", {"kind": "delete", "fields": None}, "not_found"),
    ("restore of missing note", {"kind": "restore", "fields": None}, "not_found"),
]


@pytest.mark.parametrize(("name", "over", "code"), REFUSED, ids=[r[0] for r in REFUSED])
def test_domain_refusals_are_rejected_and_write_nothing(api: Api, db: psycopg.Connection[Any],
                                                        name: str, over: dict[str, Any],
                                                        code: str) -> None:
    d = api.user()
    body = op(d, **over)
    r = d.push([body])
    assert r["results"][0]["status"] == "rejected"
    assert r["results"][0]["code"] == code
    assert r["acked"] == 1
    assert rows(db, d.user_id) == (0, 0)


def test_corrupt_yjs_update_is_rejected_and_the_body_unharmed(
        api: Api, db: psycopg.Connection[Any]) -> None:
    from tests.helpers import text_update

    d = api.user()
    nid = new_id()
    upd, _ = text_update(None, lambda t: t.insert(0, "intact"))
    d.push([d.set("note", nid, title="t"),
            d.op("note", nid, "text", field="body", update=base64.b64encode(upd).decode())])
    garbage = [b"\xff\xff\xff\xff", b"\x01\x02garbage", upd[: len(upd) // 2]]
    r = d.push([d.op("note", nid, "text", field="body", update=base64.b64encode(g).decode())
                 for g in garbage])
    assert [(x["status"], x.get("code")) for x in r["results"]] == [
        ("rejected", "validation")] * 3
    assert d.snapshot()["notes"][0]["body"] == "intact"
    assert rows(db, d.user_id) == (2, 1)


@pytest.mark.parametrize("token", [
    "not-a-jwt",
    jwt.encode({"sub": new_id(), "dev": new_id(), "exp": int(time.time()) + 60,
                "typ": "access"}, "forged-secret-forged-secret-forged-secret", algorithm="HS256"),
    jwt.encode({"sub": new_id(), "dev": new_id(), "exp": int(time.time()) - 60,
                "typ": "access"}, TEST_SECRET, algorithm="HS256"),
], ids=["garbage", "forged", "expired"])
def test_bad_tokens_are_refused(api: Api, token: str) -> None:
    for method, path in [("POST", "/v1/sync/push"), ("GET", "/v1/sync/pull"),
                         ("GET", "/v1/sync/snapshot"), ("GET", "/v1/auth/me")]:
        r = api.request(method, path, json={"ops": []} if method == "POST" else None,
                        headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 401, (path, r.text)
        assert r.json()["error"]["code"] in {"invalid_token", "token_expired"}


def test_pull_params_are_checked(api: Api) -> None:
    d = api.user()
    for params in ({"cursor": "x"}, {"limit": 0}, {"limit": 5001}, {"cursor": -1}):
        r = d.get("/v1/sync/pull", params=params)
        assert r.status_code == 400
        assert r.json()["error"]["code"] == "invalid_request"
    # Any cursor and limit in range is answered, past the head too: the page's seq range
    # (cursor, cursor + limit] must not overflow however the numbers are sent.
    d.push([d.set("note", new_id(), title="one")])
    for cursor in (0, 32_000, 2**31, 2**62):
        r = d.get("/v1/sync/pull", params={"cursor": cursor, "limit": 5000})
        assert r.status_code == 200, r.text
        assert len(r.json()["events"]) == (1 if cursor == 0 else 0)


def _clean_nul_after() -> tuple[bytes, bytes, bytes]:
    """Updates: "clean"; a NUL inserted on top of it; " after" appended to "clean"."""
    from tests.helpers import text_update

    good, state = text_update(None, lambda t: t.insert(0, "clean"))
    bad, _ = text_update(state, lambda t: t.insert(0, "nul\x00here"))
    after, _ = text_update(state, lambda t: t.insert(5, " after"))
    return good, bad, after


def _text(d: Device, nid: str, update: bytes) -> dict[str, Any]:
    return d.op("note", nid, "text", field="body", update=base64.b64encode(update).decode())


def test_text_update_inserting_nul_is_rejected_and_the_queue_moves_on(
        api: Api, db: psycopg.Connection[Any]) -> None:
    d = api.user()
    nid = new_id()
    good, bad, after = _clean_nul_after()
    r = d.push([d.set("note", nid, title="t"), _text(d, nid, good), _text(d, nid, bad),
                _text(d, nid, after)])
    assert [(x["status"], x.get("code")) for x in r["results"]] == [
        ("applied", None), ("applied", None), ("rejected", "validation"), ("applied", None)]
    assert d.snapshot()["notes"][0]["body"] == "clean after"
    assert rows(db, d.user_id) == (3, 1)


def test_a_refused_last_text_op_keeps_the_batchs_earlier_text(api: Api) -> None:
    """The refused op drops the live document; what the batch applied before it is saved."""
    d = api.user()
    nid = new_id()
    good, bad, after = _clean_nul_after()
    r = d.push([d.set("note", nid, title="t"), _text(d, nid, good), _text(d, nid, bad)])
    assert [x["status"] for x in r["results"]] == ["applied", "applied", "rejected"]
    note = d.snapshot()["notes"][0]
    assert note["body"] == "clean" and note["word_count"] == 1
    # the stored document holds "clean" too: an edit made on top of it applies in place
    d.push([_text(d, nid, after)])
    assert d.snapshot()["notes"][0]["body"] == "clean after"
