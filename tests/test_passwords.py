"""Keeping an account, through the mails a real SMTP server receives: password reset
(single use, expiring, the same answer for an unknown email, every device signed out),
password change, email verification and change, the unverified-login setting, the mail
rate limit, and where each device was last seen from."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest

from tests.fix_server import ServerProcess
from tests.fix_smtp import MAIL_ENV, MailServer, SmtpServer, token_of
from tests.helpers import PASSWORD, Api, Device

NEW_PASSWORD = "a new and longer passphrase"


@pytest.fixture(scope="module")
def mailed(smtp: SmtpServer, pg_url: str, tmp_path_factory: pytest.TempPathFactory,
           ) -> Iterator[ServerProcess]:
    proc = ServerProcess(pg_url, tmp_path_factory.mktemp("mailed"),
                         env={**MAIL_ENV, "SMTP_URL": f"smtp://127.0.0.1:{smtp.port}"})
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture
def client(mailed: ServerProcess) -> Iterator[Api]:
    with Api(mailed.base_url) as api:
        yield api


def login(api: Api, email: str, password: str, device: str = "laptop",
          agent: str = "tests/1.0") -> httpx.Response:
    return api.post("/v1/auth/login", json={"email": email, "password": password,
                                            "device": {"name": device, "platform": "test"}},
                    headers={"User-Agent": agent})


def device(api: Api, email: str, password: str = PASSWORD, name: str = "laptop") -> Device:
    r = login(api, email, password, name)
    assert r.status_code == 200, r.text
    b = r.json()
    return Device(api, b["user"]["id"], b["device_id"], email, b["access_token"],
                  b["refresh_token"])


def alive(d: Device) -> bool:
    return d.get("/v1/auth/me").status_code == 200


def refreshes(d: Device) -> bool:
    r = d.api.post("/v1/auth/refresh", json={"refresh_token": d.refresh_token})
    return r.status_code == 200


def error_code(r: httpx.Response) -> str:
    return str(r.json()["error"]["code"])


def test_reset_by_mail(client: Api, smtp: SmtpServer, db: psycopg.Connection[Any]) -> None:
    email = client.register()
    laptop, phone = device(client, email), device(client, email, name="phone")
    unknown = f"nobody-{secrets.token_hex(4)}@example.com"

    asked = client.post("/v1/auth/password/forgot", json={"email": email.upper()})
    nobody = client.post("/v1/auth/password/forgot", json={"email": unknown})
    assert asked.status_code == nobody.status_code == 202
    assert asked.json() == nobody.json()
    mail = next(m for m in smtp.inbox.wait(email, 2) if m["Subject"] == "Reset your password")
    token = token_of(mail)
    # Written in the request's transaction, so no row now means no mail ever.
    assert db.execute("SELECT count(*) FROM outbox WHERE recipient = %s",
                      (unknown,)).fetchone() == (0,)
    assert smtp.inbox.to(unknown) == []
    # Only the token's hash is kept.
    stored = db.execute("SELECT token_hash FROM account_tokens WHERE purpose = 'reset' "
                        "AND user_id = %s", (laptop.user_id,)).fetchall()
    assert stored == [(hashlib.sha256(token.encode()).digest(),)]

    too_short = client.post("/v1/auth/password/reset", json={"token": token, "password": "x"})
    assert too_short.status_code == 400 and error_code(too_short) == "validation"
    r = client.post("/v1/auth/password/reset", json={"token": token, "password": NEW_PASSWORD})
    assert r.status_code == 204, r.text
    again = client.post("/v1/auth/password/reset", json={"token": token, "password": PASSWORD})
    assert again.status_code == 400 and error_code(again) == "invalid_token"

    assert login(client, email, PASSWORD).status_code == 401
    assert not alive(laptop) and not alive(phone)
    assert not refreshes(laptop) and not refreshes(phone)
    fresh = device(client, email, NEW_PASSWORD)
    # Following the mailed link proved the address.
    assert fresh.get("/v1/auth/me").json()["user"]["email_verified"] is True

    # An expired token is refused, and leaves the password as it is.
    client.post("/v1/auth/password/forgot", json={"email": email})
    expired = token_of(smtp.inbox.wait(email, 3)[-1])
    db.execute("UPDATE account_tokens SET expires_at = now() - interval '1 second' "
               "WHERE token_hash = %s", (hashlib.sha256(expired.encode()).digest(),))
    r = client.post("/v1/auth/password/reset", json={"token": expired, "password": PASSWORD})
    assert r.status_code == 400 and error_code(r) == "invalid_token"
    assert alive(fresh) and login(client, email, NEW_PASSWORD).status_code == 200

    garbage = client.post("/v1/auth/password/reset", json={"token": "nope", "password": PASSWORD})
    assert garbage.status_code == 400 and error_code(garbage) == "invalid_token"
    assert client.post("/v1/auth/password/forgot", json={"email": "not an email"}
                       ).status_code == 400


def test_change_password(client: Api) -> None:
    email = client.register()
    laptop, phone, tablet = (device(client, email, name=n) for n in ("laptop", "phone", "tab"))

    def change(current: str, new: str, **extra: Any) -> httpx.Response:
        return client.post("/v1/auth/password", headers=laptop.headers,
                           json={"current_password": current, "password": new, **extra})

    wrong = change("not the password", NEW_PASSWORD)
    assert wrong.status_code == 403 and error_code(wrong) == "invalid_credentials"
    assert change(PASSWORD, "short").status_code == 400
    assert client.post("/v1/auth/password", json={"current_password": PASSWORD,
                                                   "password": NEW_PASSWORD}).status_code == 401
    assert login(client, email, PASSWORD).status_code == 200  # nothing changed so far

    r = change(PASSWORD, NEW_PASSWORD)
    assert r.status_code == 200, r.text
    ended = set(r.json()["signed_out"])
    assert {phone.device_id, tablet.device_id} <= ended and laptop.device_id not in ended
    assert alive(laptop) and refreshes(laptop)
    assert not alive(phone) and not alive(tablet) and not refreshes(phone)
    assert login(client, email, PASSWORD).status_code == 401

    # keep_devices: the others stay signed in.
    other = device(client, email, NEW_PASSWORD, "desktop")
    r = change(NEW_PASSWORD, PASSWORD, keep_devices=True)
    assert r.status_code == 200 and r.json()["signed_out"] == []
    assert alive(other)
    assert login(client, email, PASSWORD).status_code == 200


def test_verification_and_email_change(client: Api, smtp: SmtpServer) -> None:
    email = client.register()
    d = device(client, email)
    assert d.get("/v1/auth/me").json()["user"]["email_verified"] is False
    [mail] = smtp.inbox.wait(email)
    assert mail["Subject"] == "Verify your email address"
    body = mail.get_content()
    assert "https://sync.example/v1/auth/verify?token=" in body
    token = token_of(mail)

    r = client.get("/v1/auth/verify", params={"token": token})
    assert r.status_code == 200, r.text
    assert r.json()["user"] == {"id": d.user_id, "email": email, "name": "",
                                "email_verified": True}
    assert d.get("/v1/auth/me").json()["user"]["email_verified"] is True
    again = client.get("/v1/auth/verify", params={"token": token})
    assert again.status_code == 400 and error_code(again) == "invalid_token"
    assert client.get("/v1/auth/verify").status_code == 400
    resend = client.post("/v1/auth/verify/resend", headers=d.headers)
    assert resend.status_code == 409 and error_code(resend) == "already_verified"

    # Changing the address: the password is needed, a taken address is refused.
    new = f"moved-{secrets.token_hex(4)}@example.com"
    taken = client.register()
    for password, address, status in ((NEW_PASSWORD, new, 403), (PASSWORD, taken, 409),
                                      (PASSWORD, "no-at-sign", 400)):
        r = client.post("/v1/auth/email", headers=d.headers,
                        json={"password": password, "email": address})
        assert r.status_code == status, r.text
    r = client.post("/v1/auth/email", headers=d.headers, json={"password": PASSWORD,
                                                               "email": new})
    assert r.status_code == 202, r.text
    [link] = smtp.inbox.wait(new)
    notice = smtp.inbox.wait(email, 2)[1]
    assert notice["Subject"] == "Your email address is changing" and new in notice.get_content()
    # Nothing changes until the link is followed.
    assert d.get("/v1/auth/me").json()["user"]["email"] == email
    r = client.get("/v1/auth/verify", params={"token": token_of(link)})
    assert r.status_code == 200 and r.json()["user"]["email"] == new
    me = d.get("/v1/auth/me").json()["user"]
    assert me["email"] == new and me["email_verified"] is True
    assert login(client, new, PASSWORD).status_code == 200
    assert login(client, email, PASSWORD).status_code == 401

    # A link still out for an address the account had must not bring it back.
    d.api.post("/v1/auth/email", headers=d.headers, json={"password": PASSWORD,
                                                          "email": email})
    stale = token_of(smtp.inbox.wait(email, 3)[2])
    d.api.post("/v1/auth/email", headers=d.headers, json={"password": PASSWORD,
                                                          "email": f"x{new}"})
    r = client.get("/v1/auth/verify", params={"token": token_of(smtp.inbox.wait(f"x{new}")[0])})
    assert r.status_code == 200 and r.json()["user"]["email"] == f"x{new}"
    r = client.get("/v1/auth/verify", params={"token": stale})
    assert r.status_code == 400 and error_code(r) == "invalid_token"
    assert d.get("/v1/auth/me").json()["user"]["email"] == f"x{new}"

    # An unverified account asks for a new link.
    other = device(client, taken)
    r = client.post("/v1/auth/verify/resend", headers=other.headers)
    assert r.status_code == 202
    latest = smtp.inbox.wait(taken, 2)[-1]
    assert client.get("/v1/auth/verify", params={"token": token_of(latest)}).status_code == 200


def test_devices_show_last_ip_and_user_agent(client: Api) -> None:
    email = client.register()
    r = login(client, email, PASSWORD, agent="Notes/2.1 (iPhone)")
    tokens = r.json()
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    [d] = client.get("/v1/devices", headers=headers).json()["devices"]
    assert d["last_ip"] == "127.0.0.1" and d["user_agent"] == "Notes/2.1 (iPhone)"
    r = client.post("/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]},
                    headers={"User-Agent": "Notes/2.2 (iPhone)"})
    assert r.status_code == 200
    [d] = client.get("/v1/devices", headers=headers).json()["devices"]
    assert d["user_agent"] == "Notes/2.2 (iPhone)"


def test_unverified_accounts_and_the_mail_rate_limit(smtp: SmtpServer,
                                                     mail_server_factory: MailServer) -> None:
    strict = mail_server_factory(f"smtp://127.0.0.1:{smtp.port}", SYNCD_UNVERIFIED_DAYS="0",
                                 SYNCD_RATE_MAIL="2")
    with Api(strict.base_url) as api, psycopg.connect(strict.database_url,
                                                      autocommit=True) as db:
        email = api.register()
        r = login(api, email, PASSWORD)
        assert r.status_code == 403 and error_code(r) == "email_unverified"
        assert login(api, email, "a wrong password").status_code == 401
        [mail] = smtp.inbox.wait(email)
        assert api.get("/v1/auth/verify", params={"token": token_of(mail)}).status_code == 200
        assert login(api, email, PASSWORD).status_code == 200

        # Two reset mails a window per address; the third ask is refused and sends nothing.
        for _ in range(2):
            assert api.post("/v1/auth/password/forgot", json={"email": email}).status_code == 202
        r = api.post("/v1/auth/password/forgot", json={"email": email})
        assert r.status_code == 429 and r.headers["Retry-After"]
        assert db.execute("SELECT count(*) FROM outbox WHERE recipient = %s AND subject = "
                          "'Reset your password'", (email,)).fetchone() == (2,)
        smtp.inbox.wait(email, 3)
