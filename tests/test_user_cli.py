"""`syncd user`, run as a process against the server's database: list and revoke devices,
mark an email verified, set a password (an account restored by `syncd import` gets its
first one this way)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.fix_server import ServerProcess
from tests.fix_services import drop_database, fresh_database
from tests.helpers import PASSWORD, Api, Device, new_id

NEW_PASSWORD = "set by the operator 2"


def syncd(*args: str, url: str, tmp: Path, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": url, "SYNCD_DATA_DIR": str(tmp)}
    return subprocess.run([sys.executable, "-m", "syncd", *args], env=env, input=stdin,
                          capture_output=True, text=True, timeout=120)


def login(api: Api, email: str, password: str, agent: str = "tests") -> httpx.Response:
    return api.post("/v1/auth/login", headers={"User-Agent": agent}, json={
        "email": email, "password": password, "device": {"name": agent, "platform": "test"}})


def refreshes(d: Device) -> bool:
    r = d.api.post("/v1/auth/refresh", json={"refresh_token": d.refresh_token})
    if r.status_code == 200:
        d.refresh_token = r.json()["refresh_token"]
    return r.status_code == 200


def test_devices_and_revoke(api: Api, pg_url: str, tmp_path: Path) -> None:
    email = api.register()
    laptop = api.login(email, "laptop")
    login(api, email, PASSWORD, agent="Writer/3.0 (Android)")
    run = syncd("user", "devices", email, url=pg_url, tmp=tmp_path)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert len(lines) == 3 and lines[0].startswith("id\t")
    phone = next(line for line in lines if "Writer/3.0 (Android)" in line)
    assert "127.0.0.1" in phone
    phone_id = phone.split("\t")[0]

    run = syncd("user", "revoke", laptop.device_id, url=pg_url, tmp=tmp_path)
    assert run.returncode == 0, run.stderr
    assert not refreshes(laptop)
    # A server takes a device read live as live for SYNCD_DEVICE_CHECK_TTL (2 s).
    deadline = time.monotonic() + 30
    while laptop.get("/v1/auth/me").status_code != 401:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    revoked = syncd("user", "devices", email, url=pg_url, tmp=tmp_path).stdout.splitlines()
    assert next(x for x in revoked if x.startswith(laptop.device_id)).split("\t")[-1]
    assert next(x for x in revoked if x.startswith(phone_id)).split("\t")[-1] == ""

    assert syncd("user", "revoke", new_id(), url=pg_url, tmp=tmp_path).returncode == 1
    assert syncd("user", "revoke", "not-an-id", url=pg_url, tmp=tmp_path).returncode == 1
    missing = syncd("user", "devices", "nobody@example.com", url=pg_url, tmp=tmp_path)
    assert missing.returncode == 1 and "no account" in missing.stderr


def test_verify_and_set_password(api: Api, pg_url: str, tmp_path: Path) -> None:
    email = api.register()
    d = api.login(email)
    assert d.get("/v1/auth/me").json()["user"]["email_verified"] is False
    run = syncd("user", "verify", email.upper(), url=pg_url, tmp=tmp_path)
    assert run.returncode == 0, run.stderr
    assert d.get("/v1/auth/me").json()["user"]["email_verified"] is True

    short = syncd("user", "set-password", email, url=pg_url, tmp=tmp_path, stdin="short\n")
    assert short.returncode == 1 and "password must be" in short.stderr
    assert login(api, email, PASSWORD).status_code == 200

    kept = syncd("user", "set-password", email, "--keep-devices", url=pg_url, tmp=tmp_path,
                 stdin=f"{NEW_PASSWORD}\n")
    assert kept.returncode == 0, kept.stderr
    assert refreshes(d)
    assert login(api, email, PASSWORD).status_code == 401
    assert login(api, email, NEW_PASSWORD).status_code == 200

    run = syncd("user", "set-password", email, url=pg_url, tmp=tmp_path, stdin=f"{PASSWORD}\n")
    assert run.returncode == 0, run.stderr
    assert not refreshes(d)  # signed out
    assert login(api, email, PASSWORD).status_code == 200


def test_an_imported_account_gets_a_password(api: Api, pg_url: str, pg_admin_url: str,
                                             tmp_path: Path) -> None:
    source = api.user()
    note = new_id()
    source.push([source.set("note", note, title="kept across servers")])
    out = tmp_path / "export.json"
    assert syncd("export", "--user", source.email, "--out", str(out), url=pg_url,
                 tmp=tmp_path).returncode == 0
    empty = fresh_database(pg_admin_url)
    target = ServerProcess(empty, tmp_path / "target")
    try:
        run = syncd("import", str(out), url=empty, tmp=tmp_path)
        assert run.returncode == 0, run.stderr
        assert "syncd user set-password" in run.stderr
        target.start()
        with Api(target.base_url) as there:
            assert login(there, source.email, PASSWORD).status_code == 401
            run = syncd("user", "set-password", source.email, url=empty, tmp=tmp_path,
                        stdin=f"{NEW_PASSWORD}\n")
            assert run.returncode == 0, run.stderr
            r = login(there, source.email, NEW_PASSWORD)
            assert r.status_code == 200, r.text
            token = r.json()["access_token"]
            snap = there.get("/v1/sync/snapshot", headers={"Authorization": f"Bearer {token}"})
            assert [n["title"] for n in snap.json()["notes"]] == ["kept across servers"]
    finally:
        target.stop()
        drop_database(pg_admin_url, empty)
