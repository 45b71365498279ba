"""Identity: register, login (a device each), refresh rotation and reuse, logout, revoke."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from syncd.auth import Auth
from syncd.errors import Unauthorized
from tests.fix_server import ServerProcess
from tests.helpers import PASSWORD, Api


def test_register_login_me(api: Api) -> None:
    email = api.register("Ada")
    r = api.post("/v1/auth/register", json={"email": email.upper(), "password": PASSWORD})
    assert r.status_code == 409 and r.json()["error"]["code"] == "email_taken"
    d = api.login(email)
    me = d.get("/v1/auth/me").json()
    assert me["user"]["email"] == email and me["user"]["name"] == "Ada"
    assert me["device_id"] == d.device_id


def test_wrong_password_and_unknown_email_look_the_same(api: Api) -> None:
    email = api.register()
    bad = api.post("/v1/auth/login", json={"email": email, "password": "wrong password!"})
    unknown = api.post("/v1/auth/login", json={"email": "nobody@example.com",
                                               "password": PASSWORD})
    assert bad.status_code == unknown.status_code == 401
    assert bad.json()["error"]["code"] == unknown.json()["error"]["code"] == "invalid_credentials"


def test_register_validates(api: Api) -> None:
    for body in ({"email": "no-at-sign", "password": PASSWORD},
                 {"email": "a@example.com", "password": "short"}):
        r = api.post("/v1/auth/register", json=body)
        assert r.status_code == 400 and r.json()["error"]["code"] == "validation"


def test_refresh_rotates_and_reuse_revokes_the_device(api: Api) -> None:
    d = api.user()
    r = api.post("/v1/auth/refresh", json={"refresh_token": d.refresh_token})
    assert r.status_code == 200
    fresh = r.json()
    assert fresh["refresh_token"] != d.refresh_token
    new_access = fresh["access_token"]
    assert api.get("/v1/auth/me", headers={"Authorization": f"Bearer {new_access}"}
                   ).status_code == 200
    # The old refresh token comes back: a copy is loose. The device ends.
    reuse = api.post("/v1/auth/refresh", json={"refresh_token": d.refresh_token})
    assert reuse.status_code == 401 and reuse.json()["error"]["code"] == "token_reused"
    assert api.post("/v1/auth/refresh", json={"refresh_token": fresh["refresh_token"]}
                    ).status_code == 401
    me = api.get("/v1/auth/me", headers={"Authorization": f"Bearer {new_access}"})
    assert me.status_code == 401 and me.json()["error"]["code"] == "device_revoked"


def test_logout_ends_tokens_at_once(api: Api) -> None:
    d = api.user()
    other = d.login_again("phone")
    assert api.post("/v1/auth/logout", headers=d.headers).status_code == 204
    assert d.get("/v1/auth/me").status_code == 401
    assert api.post("/v1/auth/refresh", json={"refresh_token": d.refresh_token}
                    ).status_code == 401
    assert other.get("/v1/auth/me").status_code == 200


def test_devices_list_and_revoke(api: Api) -> None:
    laptop = api.user("laptop")
    phone = laptop.login_again("phone")
    devices = laptop.get("/v1/devices").json()["devices"]
    assert [x["name"] for x in devices] == ["laptop", "phone"]
    assert [x["current"] for x in devices] == [True, False]
    r = api.delete(f"/v1/devices/{phone.device_id}", headers=laptop.headers)
    assert r.status_code == 204
    # Its unexpired access token fails at once, for every endpoint.
    assert phone.get("/v1/sync/pull").status_code == 401
    assert api.post("/v1/sync/push", json={"ops": []}, headers=phone.headers).status_code == 401
    # Another user's device cannot be revoked (nor seen).
    stranger = api.user()
    assert api.delete(f"/v1/devices/{laptop.device_id}", headers=stranger.headers
                      ).status_code == 404
    assert laptop.get("/v1/auth/me").status_code == 200


def test_a_remembered_access_token_still_expires() -> None:
    """Decoded claims are kept per token, but expiry is checked on every use."""
    auth = Auth(None, "a-test-secret-a-test-secret-a-test-secret", 2, 60)  # type: ignore[arg-type]
    user, device = uuid.uuid4(), uuid.uuid4()
    token = auth.access_token(user, device)
    assert auth.decode(token) == auth.decode(token)
    assert auth.decode(token).device_id == device
    time.sleep(2.1)  # exp is a whole second, 1 to 2 s from issue
    with pytest.raises(Unauthorized) as refused:
        auth.decode(token)
    assert refused.value.code == "token_expired"
    with pytest.raises(Unauthorized):
        auth.decode(token[:-2] + ("AA" if token[-2:] != "AA" else "BB"))


def refused_within(seconds: float, status: Callable[[], int]) -> bool:
    deadline = time.monotonic() + seconds
    while status() != 401:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_a_revocation_reaches_every_node_at_once(pg_url: str, tmp_root: Path,
                                                 redis_url: str) -> None:
    """A node takes a device it read live as live for SYNCD_DEVICE_CHECK_TTL, here an
    hour, so only the bus can make node B refuse a device revoked on node A."""
    tag = uuid.uuid4().hex[:8]
    nodes = [ServerProcess(pg_url, tmp_root / f"ttl-{tag}-{i}", redis_url=redis_url,
                           env={"SYNCD_DEVICE_CHECK_TTL": "3600"}) for i in range(2)]
    for node in nodes:
        node.start()
    try:
        with Api(nodes[0].base_url) as api_a, Api(nodes[1].base_url) as api_b:
            laptop = api_a.user("laptop")
            phone, tablet = laptop.login_again("phone"), laptop.login_again("tablet")

            def on_b(token: str) -> int:
                return api_b.get("/v1/auth/me",
                                 headers={"Authorization": f"Bearer {token}"}).status_code

            assert on_b(phone.token) == on_b(tablet.token) == 200  # now remembered on B
            assert phone.get("/v1/auth/me").status_code == 200  # and on A
            assert api_a.delete(f"/v1/devices/{phone.device_id}",
                                headers=laptop.headers).status_code == 204
            assert phone.get("/v1/auth/me").status_code == 401  # at once on A
            assert refused_within(10, lambda: on_b(phone.token))
            # Refresh-token reuse ends a device too, and says so to every node.
            assert api_a.post("/v1/auth/refresh", json={"refresh_token": tablet.refresh_token}
                              ).status_code == 200
            assert api_a.post("/v1/auth/refresh", json={"refresh_token": tablet.refresh_token}
                              ).status_code == 401
            assert refused_within(10, lambda: on_b(tablet.token))
            assert on_b(laptop.token) == 200
    finally:
        for node in nodes:
            node.stop()


def test_a_revocation_no_node_announced_is_seen_within_the_check_ttl(
        pg_url: str, tmp_root: Path, db: psycopg.Connection[Any]) -> None:
    """Revoked in the database behind the server's back (no bus message): a remembered
    device is read again once SYNCD_DEVICE_CHECK_TTL has passed."""
    node = ServerProcess(pg_url, tmp_root / f"ttl-{uuid.uuid4().hex[:8]}",
                         env={"SYNCD_DEVICE_CHECK_TTL": "0.5"})
    node.start()
    try:
        with Api(node.base_url) as api:
            d = api.user()
            assert d.get("/v1/auth/me").status_code == 200
            db.execute("UPDATE devices SET revoked_at = now() WHERE id = %s", (d.device_id,))
            db.commit()
            assert refused_within(10, lambda: d.get("/v1/auth/me").status_code)
            assert d.get("/v1/auth/me").json()["error"]["code"] == "device_revoked"
    finally:
        node.stop()
