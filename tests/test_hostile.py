"""Hostile input on every route and both sockets: a NUL in every string, deep JSON in
every object, oversize values, wrong types, bytes that are not UTF-8. Each is answered 4xx
(or `rejected` per op, or an `error` frame), writes nothing, and the connection it came on
serves the next request.

The HTTP cases are built from the OpenAPI document: every operation that takes a body or
query parameters, with the valid body below as the starting point of its mutations.
"""

from __future__ import annotations

import base64
import http.client
import json
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from syncd import yproto
from syncd.app import routes
from syncd.openapi import document
from tests.fix_server import ServerProcess
from tests.helpers import PASSWORD, Api, Device, new_id, text_update
from tests.ws_client import hello, open_socket, recv, send

DOC = document(routes())
DEEP = "[" * 100_000 + "]" * 100_000
HUGE = "x" * (2 * 1024 * 1024)


def fingerprint(db: psycopg.Connection[Any]) -> tuple[Any, ...]:
    """Everything a request could write, but a device's `acked` (a rejected op is consumed)."""
    row = db.execute("""
        SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM payloads),
               (SELECT count(*) FROM users), (SELECT md5(string_agg(id || name || timezone,
                                                                    ',' ORDER BY id)) FROM users),
               (SELECT count(*) FROM devices WHERE revoked_at IS NULL),
               (SELECT count(*) FROM members), (SELECT count(*) FROM conflicts),
               (SELECT md5(string_agg(id || ':' || version || title || deleted, ','
                                      ORDER BY id)) FROM notes),
               (SELECT md5(string_agg(id || ':' || version || title || deleted, ','
                                      ORDER BY id)) FROM projects)""").fetchone()
    assert row is not None
    return tuple(row)


class World:
    """A user with a note in a shared project, and the member it is shared with."""

    def __init__(self, api: Api) -> None:
        self.dev = api.user("hostile")
        self.other = api.user("member")
        self.project, self.note = new_id(), new_id()
        self.dev.push([self.dev.set("project", self.project, title="p"),
                       self.dev.set("note", self.note, title="n", project_id=self.project)])
        r = api.post(f"/v1/projects/{self.project}/members", headers=self.dev.headers,
                     json={"email": self.other.email, "role": "viewer"})
        assert r.status_code == 201, r.text

    def path(self, template: str) -> str:
        entity = self.note if template.startswith("/v1/notes/") else self.project
        return (template.replace("{id}", entity).replace("{user_id}", self.other.user_id)
                .replace("{device_id}", new_id()))

    def fill(self, raw: bytes) -> bytes:
        """The body's placeholders replaced by this world's values."""
        for key, value in ((b"@HLC@", self.dev.hlc()), (b"@EMAIL@", self.dev.email),
                           (b"@PROJECT@", self.project), (b"@NEW@", new_id())):
            raw = raw.replace(key, value.encode())
        return raw


# A valid body of each operation that takes one (what is sent are its mutations), with
# placeholders for what only a running server knows.
BODIES: dict[tuple[str, str], Any] = {
    ("POST", "/v1/auth/register"): {"email": "h@example.com", "password": PASSWORD,
                                    "name": "n"},
    ("POST", "/v1/auth/login"): {"email": "@EMAIL@", "password": PASSWORD,
                                 "device": {"name": "d", "platform": "p"}},
    ("POST", "/v1/auth/refresh"): {"refresh_token": "r"},
    ("PATCH", "/v1/auth/me"): {"timezone": "Europe/Paris", "name": "n"},
    ("DELETE", "/v1/account"): {"password": PASSWORD},
    ("POST", "/v1/sync/push"): {"ops": [{
        "client_seq": 1, "hlc": "@HLC@", "entity": "note", "id": "@NEW@", "kind": "set",
        "fields": {"title": "t", "tags": ["a"]}}]},
    ("POST", "/v1/projects/{id}/members"): {"email": "x@example.com", "role": "editor"},
    ("POST", "/v1/notes"): {"id": "@NEW@", "title": "t", "tags": ["a"], "pinned": True,
                            "body": "b", "project_id": "@PROJECT@", "meta": {"k": "v"}},
    ("PATCH", "/v1/notes/{id}"): {"title": "t", "tags": ["a"], "favorite": True, "body": "b",
                                  "base_version": 1, "deleted": False},
    ("POST", "/v1/projects"): {"id": "@NEW@", "title": "t", "description": "d",
                               "word_goal": 5, "status": "active"},
    ("PATCH", "/v1/projects/{id}"): {"title": "t", "description": "d", "word_goal": 5,
                                     "status": "completed", "meta": {"k": "v"}},
    ("PATCH", "/v1/settings"): {"values": {"k": "v"}},
    ("POST", "/v1/auth/oidc/token"): {"code": "c"},
    ("POST", "/v1/notes/{id}/revert"): {"seq": 1},
    ("POST", "/v1/projects/{id}/revert"): {"at": "2020-01-01T00:00:00Z"},
    ("POST", "/v1/conflicts/{id}/resolve"): {"choose": "mine"},
}


def _leaves(value: Any, at: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    yield at, value
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _leaves(v, (*at, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _leaves(v, (*at, i))


def _replace(value: Any, at: tuple[Any, ...], new: Any) -> Any:
    if not at:
        return new
    copy = json.loads(json.dumps(value))
    holder = copy
    for key in at[:-1]:
        holder = holder[key]
    holder[at[-1]] = new
    return copy


def _raw(value: Any, deep_at: tuple[Any, ...] | None = None, key: str | None = None) -> bytes:
    """JSON of `value`, with 100,000-deep JSON put at `deep_at` (as `key` when given)."""
    if deep_at is None:
        return json.dumps(value).encode()
    marker = "__deep__"
    new = {**_get(value, deep_at), key: marker} if key else marker
    return json.dumps(_replace(value, deep_at, new)).replace(f'"{marker}"', DEEP).encode()


def _get(value: Any, at: tuple[Any, ...]) -> Any:
    for key in at:
        value = value[key]
    return value


def body_cases(body: Any) -> Iterator[tuple[str, bytes]]:
    for at, leaf in _leaves(body):
        where = ".".join(map(str, at)) or "body"
        if isinstance(leaf, str):
            yield f"NUL in {where}", json.dumps(_replace(body, at, leaf + "\x00")).encode()
            yield f"oversize {where}", json.dumps(_replace(body, at, HUGE)).encode()
        free = len(at) > 1 and at[-2] in ("meta", "values")  # any JSON value is one
        if at and not free:
            yield f"wrong type of {where}", json.dumps(_replace(body, at, [[leaf]])).encode()
            yield f"deep JSON as {where}", _raw(body, at)
        if isinstance(leaf, dict):
            yield f"deep JSON under an unknown key of {where}", _raw(body, at, "zz_unknown")
            # A push and its ops ignore fields they do not know (schema evolution).
            if not ("ops" in body and at in ((), ("ops", 0))):
                yield f"NUL in a key of {where}", json.dumps(
                    _replace(body, at, {**leaf, "k\x00": 1})).encode()
    strings = [at for at, leaf in _leaves(body) if isinstance(leaf, str)]
    bad = _replace(body, strings[0], "@BAD@") if strings else {**body, "@BAD@": 1}
    yield "not UTF-8", json.dumps(bad).encode().replace(b"@BAD@", b"\xff\xfe")
    yield "not an object", b"[1, 2, 3]"
    yield "NUL byte outside a string", b"{\x00}"


def query_cases(op: dict[str, Any]) -> Iterator[tuple[str, str]]:
    for p in op.get("parameters", []):
        if p["in"] != "query":
            continue
        name, schema = p["name"], p["schema"]
        yield f"NUL in ?{name}", f"{name}=a%00b"
        if schema.get("type") == "integer":
            yield f"?{name} not an integer", f"{name}=1.5"
            yield f"?{name} too large", f"{name}={'9' * 40}"
        if "enum" in schema:
            yield f"?{name} not one of its values", f"{name}=nope"
        if "maxLength" in schema or "items" in schema:
            yield f"?{name} oversize", f"{name}={'x' * 5000}"
        if schema.get("type") == "string" and "maxLength" not in schema and "enum" not in schema:
            yield f"?{name} not UTF-8", f"{name}=%ff%fe"


def http_cases() -> list[tuple[str, str, str, str, bytes | None]]:
    """(id, method, path template, query, body) for every hostile request."""
    out: list[tuple[str, str, str, str, bytes | None]] = []
    for path, ops in DOC["paths"].items():
        for method, op in ops.items():
            m = method.upper()
            for name, query in query_cases(op):
                out.append((f"{m} {path} {name}", m, path, query, None))
            if "requestBody" in op:
                for name, raw in body_cases(BODIES.get((m, path), {})):
                    out.append((f"{m} {path} {name}", m, path, "", raw))
    return out


@pytest.fixture(scope="module")
def world(server: ServerProcess) -> Iterator[World]:
    with Api(server.base_url) as api:
        yield World(api)


class Conn:
    """One keep-alive HTTP connection, to tell that the server did not drop it."""

    def __init__(self, server: ServerProcess) -> None:
        self.http = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)

    def request(self, method: str, path: str, body: bytes | None,
                headers: dict[str, str]) -> tuple[int, bytes, bool]:
        self.http.request(method, path, body=body, headers={
            "Content-Type": "application/json", **headers})
        r = self.http.getresponse()
        return r.status, r.read(), r.will_close


CASES = http_cases()


@pytest.fixture
def conn(server: ServerProcess) -> Iterator[Conn]:
    c = Conn(server)
    yield c
    c.http.close()


def test_every_operation_with_input_has_hostile_cases() -> None:
    with_input = {(m.upper(), p) for p, ops in DOC["paths"].items() for m, op in ops.items()
                  if "requestBody" in op or any(x["in"] == "query"
                                                for x in op.get("parameters", []))}
    assert {(c[1], c[2]) for c in CASES} == with_input
    assert len(with_input) > 25


@pytest.mark.parametrize(("name", "method", "template", "query", "body"), CASES,
                         ids=[c[0] for c in CASES])
def test_hostile_http_requests(conn: Conn, world: World, db: psycopg.Connection[Any],
                               name: str, method: str, template: str, query: str,
                               body: bytes | None) -> None:
    auth = {"Authorization": f"Bearer {world.dev.token}"}
    before = fingerprint(db)
    path = world.path(template) + (f"?{query}" if query else "")
    body = world.fill(body) if body is not None else None
    if template == "/v1/sync/push" and body is not None:
        # A well-formed op is numbered from the device's acked (rejected ops are consumed).
        status, raw, _ = conn.request("GET", "/v1/sync/status", None, auth)
        acked = json.loads(raw)["acked"]
        body = body.replace(b'"client_seq": 1,', f'"client_seq": {acked + 1},'.encode())
    status, raw, will_close = conn.request(method, path, body, auth)
    if status == 200 and template == "/v1/sync/push":
        results = json.loads(raw)["results"]
        assert [r["status"] for r in results] == ["rejected"], results
    else:
        assert 400 <= status < 500, (status, raw[:300])
        assert json.loads(raw)["error"]["code"], raw[:300]
    assert fingerprint(db) == before
    if status != 413:  # an oversize body is not read: the server closes (RFC 9112 §9.6)
        assert not will_close
        sock = conn.http.sock
        status, raw, _ = conn.request("GET", "/v1/auth/me", None, auth)
        assert status == 200, raw
        assert conn.http.sock is sock  # the same connection served it


@pytest.mark.parametrize("value", ['"\\u0000"', '{"a":["\\u0000"]}', "[" * 5000 + "]" * 5000,
                                   "%00", "%ff%fe"])
def test_hostile_meta_filters(conn: Conn, world: World, db: psycopg.Connection[Any],
                              value: str) -> None:
    """`meta.<key>=<JSON>` names its key in the parameter: no document can list them."""
    auth = {"Authorization": f"Bearer {world.dev.token}"}
    before = fingerprint(db)
    for path in ("/v1/notes", "/v1/projects"):
        status, raw, will_close = conn.request("GET", f"{path}?meta.k={value}", None, auth)
        assert status == 400, raw[:300]
        assert json.loads(raw)["error"]["code"] in ("invalid_request", "too_deep")
        assert not will_close
    assert fingerprint(db) == before


def test_token_in_the_query_string_is_refused_on_rest(world: World, conn: Conn) -> None:
    status, raw, _ = conn.request("GET", f"/v1/auth/me?token={world.dev.token}", None, {})
    assert status == 401
    assert json.loads(raw)["error"]["code"] == "token_in_query"


def test_405_lists_every_method_of_the_path(conn: Conn, world: World) -> None:
    for path, ops in DOC["paths"].items():
        conn.http.request("PUT", world.path(path), body=b"{}")
        r = conn.http.getresponse()
        r.read()
        assert r.status == 405, path
        allowed = {m.strip() for m in (r.getheader("allow") or "").split(",")}
        assert allowed == {m.upper() for m in ops} | ({"HEAD"} if "get" in ops else set()), (
            path, allowed)


# --- a viewer's restore ---------------------------------------------------------------


def test_a_viewers_restore_is_403_whatever_the_notes_state(api: Api, world: World) -> None:
    viewer = world.other
    url = f"/v1/notes/{world.note}/restore"
    r = api.post(url, headers=viewer.headers)
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    assert api.delete(f"/v1/notes/{world.note}", headers=world.dev.headers).status_code == 200
    r = api.post(url, headers=viewer.headers)
    assert r.status_code == 403
    assert api.post(url, headers=world.dev.headers, json={}).status_code == 200
    # an editor may not delete or restore a project, even one that is live
    r = api.post(f"/v1/projects/{world.project}/restore", headers=viewer.headers)
    assert r.status_code == 403


# --- the sync socket --------------------------------------------------------------------


def _op(dev: Device, **over: Any) -> dict[str, Any]:
    return {"client_seq": 1, "hlc": dev.hlc(), "entity": "note", "id": new_id(), "kind": "set",
            "fields": {"title": "t"}, **over}


def socket_frames(dev: Device) -> Iterator[tuple[str, str]]:
    push = {"type": "push", "ops": [_op(dev)]}
    for name, raw in body_cases(push):
        if name.endswith((" type", "UTF-8", "not an object", "outside a string")):
            # Not a protocol message (no known type, not JSON): closed with 4409, below.
            continue
        yield f"push: {name}", raw.decode()
    yield "hello: cursor a string", json.dumps({"type": "hello", "cursor": "0"})
    yield "hello: negative cursor", json.dumps({"type": "hello", "cursor": -1})
    yield "hello: deep JSON", json.dumps({"type": "hello", "cursor": 0, "x": 1}).replace(
        "1}", DEEP + "}")
    yield "oversize frame", json.dumps({"type": "push", "ops": [_op(dev)], "pad": "x" * (
        9 * 1024 * 1024)})


def test_hostile_frames_on_the_sync_socket(server: ServerProcess, api: Api,
                                           db: psycopg.Connection[Any]) -> None:
    dev = api.user("socket")
    before = fingerprint(db)
    with open_socket(server.ws_url, dev) as ws:
        hello(ws)
        for name, frame in socket_frames(dev):
            if '"client_seq": 1' in frame:
                status = api.get("/v1/sync/status", headers=dev.headers).json()
                frame = frame.replace('"client_seq": 1', f'"client_seq": {status["acked"] + 1}')
            send_text(ws, frame)
            answer = recv(ws)
            if answer["type"] == "ack":
                assert [r["status"] for r in answer["results"]] == ["rejected"], (name, answer)
            else:
                assert answer["type"] == "error" and answer["code"], (name, answer)
            send(ws, {"type": "ping"})
            assert recv(ws)["type"] == "pong", name
    assert fingerprint(db) == before


def send_text(ws: Any, frame: str) -> None:
    ws.send(frame)


def test_a_binary_frame_that_is_not_utf8_json_closes_the_sync_socket_4409(
        server: ServerProcess, api: Api, db: psycopg.Connection[Any]) -> None:
    dev = api.user("socket")
    before = fingerprint(db)
    with open_socket(server.ws_url, dev) as ws:
        hello(ws)
        ws.send(b'{"type": "\xff\xfe"}')  # as a binary frame: a text one must be UTF-8
        with pytest.raises(ConnectionClosed) as closed:
            recv(ws)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4409
    assert fingerprint(db) == before
    with open_socket(server.ws_url, dev) as ws:  # the server serves the next one
        hello(ws)
        send(ws, {"type": "ping"})
        assert recv(ws)["type"] == "pong"


# --- the collab socket ------------------------------------------------------------------


# Each note of these tests starts as this document, which the NUL insert builds on.
BASE_UPDATE, BASE_STATE = text_update(None, lambda t: t.insert(0, "base"))


def collab_frames() -> Iterator[tuple[str, bytes | str]]:
    nul, _ = text_update(BASE_STATE, lambda t: t.insert(0, "a\x00b"))
    yield "an update inserting a NUL", yproto.encode_update(nul)
    yield "garbage", b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"
    yield "truncated", yproto.encode_update(b"\x01\x02\x03")[:2]
    yield "an update that is not Yjs", yproto.encode_update(b"\x05not an update")
    yield "a state vector that is not one", yproto.encode_sync_step1(b"\xff\xff\xff")
    yield "an unknown message type", yproto.write_var_uint(99) + b"\x00"
    yield "a text frame", "not binary"
    yield "a text frame of deep JSON", DEEP
    yield "awareness that is not JSON", yproto.encode_awareness(
        yproto.write_var_uint(1) + yproto.write_var_uint(1) + yproto.write_var_uint(1)
        + yproto.write_var_string("{\x00" + "[" * 10_000))
    yield "oversize", b"\x00\x02" + yproto.write_var_uint(5 * 1024 * 1024) + HUGE.encode() * 3


def _collab(server: ServerProcess, note: str, token: str) -> Any:
    return connect(f"{server.ws_url}/v1/collab/{note}?token={token}", max_size=None,
                   open_timeout=10)


def _text_of(server: ServerProcess, note: str, token: str) -> str:
    from pycrdt import Doc, Text

    doc: Doc[Any] = Doc()
    text = doc.get("body", type=Text)
    with _collab(server, note, token) as ws:
        ws.send(yproto.encode_sync_step1(doc.get_state()))
        while True:
            for msg in yproto.decode_frame(ws.recv(timeout=15)):
                if isinstance(msg, yproto.SyncStep2):
                    doc.apply_update(msg.update)
                    return str(text)


@pytest.mark.parametrize(("name", "frame"), list(collab_frames()),
                         ids=[n for n, _ in collab_frames()])
def test_hostile_frames_on_the_collab_socket(server: ServerProcess, api: Api,
                                             db: psycopg.Connection[Any], name: str,
                                             frame: bytes | str) -> None:
    """y-websocket has no error message: a frame that is not the protocol closes the
    socket with 4409 (4422 for an update the log would refuse, 1009 past the size limit)
    and is applied nowhere."""
    dev = api.user("collab")
    note = new_id()
    dev.push([dev.set("note", note, title="t"),
              dev.op("note", note, "text", field="body",
                     update=base64.b64encode(BASE_UPDATE).decode())])
    before = fingerprint(db)
    with _collab(server, note, dev.token) as ws:
        ws.send(frame)
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                ws.recv(timeout=15)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code in (4409, 4422, 1009), closed.value.rcvd
    assert _text_of(server, note, dev.token) == "base"  # the next connection is served
    assert fingerprint(db) == before
