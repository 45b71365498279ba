"""Test helpers: an HTTP client that registers users and builds ops the way devices do."""

from __future__ import annotations

import itertools
import secrets
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
import psycopg
from pycrdt import Doc, Text

PASSWORD = "correct horse battery staple"


@dataclass
class Device:
    """One logged-in device: its token, ids, its own client_seq and HLC."""

    api: Api
    user_id: str
    device_id: str
    email: str
    token: str
    refresh_token: str
    seq: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    counter: itertools.count[int] = field(default_factory=itertools.count)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def hlc(self, wall_ms: int | None = None) -> str:
        wall = int(time.time() * 1000) if wall_ms is None else wall_ms
        return f"{wall:013d}.{next(self.counter):06d}.{self.device_id}"

    def op(self, entity: str, id: str, kind: str, hlc: str | None = None,
           **extra: Any) -> dict[str, Any]:
        return {"client_seq": next(self.seq), "hlc": hlc or self.hlc(), "entity": entity,
                "id": id, "kind": kind, **extra}

    def set(self, entity: str, id: str, hlc: str | None = None, **fields: Any) -> dict[str, Any]:
        return self.op(entity, id, "set", hlc, fields=fields)

    def set_fields(self, entity: str, id: str, fields: dict[str, Any],
                   hlc: str | None = None) -> dict[str, Any]:
        """`set` for field names that are not identifiers (`meta.<key>`, settings keys)."""
        return self.op(entity, id, "set", hlc, fields=fields)

    def push(self, ops: list[dict[str, Any]], expect: int = 200) -> dict[str, Any]:
        r = self.api.post("/v1/sync/push", json={"ops": ops}, headers=self.headers)
        assert r.status_code == expect, r.text
        return dict(r.json())

    def pull(self, cursor: int = 0, limit: int = 5000) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        while True:
            r = self.api.get("/v1/sync/pull", params={"cursor": cursor, "limit": limit},
                             headers=self.headers)
            assert r.status_code == 200, r.text
            page = r.json()
            events += page["events"]
            cursor = page["cursor"]
            if not page["has_more"]:
                return events

    def snapshot(self) -> dict[str, Any]:
        r = self.api.get("/v1/sync/snapshot", headers=self.headers)
        assert r.status_code == 200, r.text
        return dict(r.json())

    def get(self, path: str, headers: dict[str, str] | None = None,
            **kw: Any) -> httpx.Response:
        return self.api.get(path, headers={**self.headers, **(headers or {})}, **kw)

    def login_again(self, name: str = "second") -> Device:
        return self.api.login(self.email, name)


class Api(httpx.Client):
    def __init__(self, base_url: str) -> None:
        super().__init__(base_url=base_url, timeout=30)

    def register(self, name: str = "") -> str:
        email = f"u{secrets.token_hex(6)}@example.com"
        r = self.post("/v1/auth/register", json={"email": email, "password": PASSWORD,
                                                 "name": name})
        assert r.status_code == 201, r.text
        return email

    def login(self, email: str, device: str = "laptop") -> Device:
        r = self.post("/v1/auth/login", json={"email": email, "password": PASSWORD,
                                              "device": {"name": device, "platform": "test"}})
        assert r.status_code == 200, r.text
        b = r.json()
        return Device(self, b["user"]["id"], b["device_id"], email, b["access_token"],
                      b["refresh_token"])

    def user(self, device: str = "laptop") -> Device:
        return self.login(self.register(), device)


def new_id() -> str:
    return str(uuid.uuid4())


def text_update(base_state: bytes | None, edit: Any) -> tuple[bytes, bytes]:
    """Apply edit(text) to a doc at base_state; return (the update it made, the new state)."""
    doc: Doc[Any] = Doc()
    text = doc.get("body", type=Text)
    if base_state:
        doc.apply_update(base_state)
    before = doc.get_state()
    edit(text)
    return doc.get_update(before), doc.get_update()


def assert_acked_once(db: psycopg.Connection[Any], device_id: str, acked: int) -> None:
    """Every op the device had acknowledged (client_seq 1..acked) is in the log exactly once:
    one op id per client_seq, however many members' logs hold a copy."""
    rows = db.execute(
        "SELECT client_seq, count(DISTINCT op_id) FROM events "
        "WHERE device_id = %s AND client_seq IS NOT NULL GROUP BY client_seq",
        (device_id,)).fetchall()
    counts = {int(s): int(n) for s, n in rows}
    assert counts == {s: 1 for s in range(1, acked + 1)}, (device_id, counts)


def metric(base_url: str, name: str, labels: str = "") -> float:
    """One sample of the server's Prometheus metrics (0 when it has none yet)."""
    import re

    text = httpx.get(f"{base_url}/metrics", timeout=30).text
    braces = re.escape("{" + labels + "}") if labels else ""
    found = re.search(rf"^{re.escape(name)}{braces} (\S+)$", text, re.M)
    return float(found.group(1)) if found else 0.0
