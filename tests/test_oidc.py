"""Sign-in with an OpenID provider, end to end: a real provider process on loopback with a
registered client, driven through its login form; syncd as a real server; the test plays
the browser and the app. A new account, linking to an existing account (only when the email
is verified; an account whose email syncd never verified is claimed from whoever registered
it), and a forged state, a wrong nonce and an ID token signed by another key, each
refused with its code and leaving no account, link or device behind."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import httpx
import psycopg
import pytest

from tests.fix_oidc import Gateway, provider_process
from tests.fix_server import ServerProcess, free_port
from tests.fix_services import drop_database, fresh_database
from tests.helpers import PASSWORD, Api, Device

APP_URL = "https://app.example/signed-in"


@pytest.fixture(scope="module")
def gateway(tmp_root: Path) -> Iterator[Gateway]:
    with provider_process(tmp_root / "oidc") as upstream, Gateway(upstream) as gw:
        yield gw


@pytest.fixture(scope="module")
def syncd(pg_url: str, tmp_root: Path, gateway: Gateway) -> Iterator[ServerProcess]:
    proc = oidc_server(pg_url, tmp_root / "oidc-syncd", gateway)
    proc.start()
    yield proc
    proc.stop()


def oidc_server(db_url: str, data_dir: Path, gateway: Gateway) -> ServerProcess:
    """A syncd on `db_url` registered at the provider as a client of its own."""
    port = free_port()
    callback = f"http://127.0.0.1:{port}/v1/auth/oidc/callback"
    r = httpx.post(f"{gateway.url}/oauth2/clients", json={"redirect_uris": [callback]})
    assert r.status_code == 201, r.text
    client = r.json()
    return ServerProcess(db_url, data_dir, port=port, env={
        "SYNCD_OIDC_ISSUER": gateway.url, "SYNCD_OIDC_CLIENT_ID": client["client_id"],
        "SYNCD_OIDC_CLIENT_SECRET": client["client_secret"],
        "SYNCD_OIDC_REDIRECT_URL": callback, "SYNCD_OIDC_APP_URL": APP_URL})


@pytest.fixture
def forging(gateway: Gateway) -> Iterator[None]:
    gateway.forge = True
    yield
    gateway.forge = False


def person(gateway: Gateway, email: str, verified: bool = True) -> str:
    """A user at the provider (its own subject), with an email the provider vouches for."""
    sub = f"sub-{uuid.uuid4().hex[:12]}"
    r = httpx.put(f"{gateway.url}/users/{sub}",
                  json={"email": email, "email_verified": verified, "name": "Grace"})
    assert r.status_code == 204, r.text
    return sub


def start(browser: httpx.Client, syncd: ServerProcess) -> str:
    r = browser.get(f"{syncd.base_url}/v1/auth/oidc/start",
                    params={"device_name": "Phone", "platform": "ios"})
    assert r.status_code == 302, r.text
    return r.headers["location"]


def login_at_provider(browser: httpx.Client, authorize_url: str, sub: str) -> str:
    """Fill in the provider's login form; returns where it sends the browser back to."""
    form = browser.get(authorize_url)
    assert form.status_code == 200 and 'name="sub"' in form.text
    r = browser.post(authorize_url, data={"sub": sub})
    assert r.status_code == 302, r.text
    return r.headers["location"]


def app_code(r: httpx.Response) -> str:
    assert r.status_code == 303, r.text
    target = r.headers["location"]
    assert target.startswith(APP_URL + "?")
    return parse_qs(urlsplit(target).query)["code"][0]


def sign_in(syncd: ServerProcess, sub: str) -> dict[str, Any]:
    with httpx.Client() as browser:
        back = login_at_provider(browser, start(browser, syncd), sub)
        code = app_code(browser.get(back))
    r = httpx.post(f"{syncd.base_url}/v1/auth/oidc/token", json={"code": code})
    assert r.status_code == 200, r.text
    again = httpx.post(f"{syncd.base_url}/v1/auth/oidc/token", json={"code": code})
    assert again.status_code == 400 and again.json()["error"]["code"] == "oidc_code_invalid"
    return dict(r.json())


def error_code(r: httpx.Response, status: int) -> str:
    assert r.status_code == status, r.text
    return str(r.json()["error"]["code"])


def with_param(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()} | changes
    return urlunsplit(parts._replace(query=urlencode(query)))


def identities(db: psycopg.Connection[Any], email: str) -> int:
    row = db.execute("""SELECT count(i.*) FROM users u LEFT JOIN oidc_identities i
                        ON i.user_id = u.id WHERE u.email = %s""", (email,)).fetchone()
    return int(row[0]) if row else 0


def test_start_sends_pkce_state_and_nonce(syncd: ServerProcess) -> None:
    with httpx.Client() as browser:
        query = parse_qs(urlsplit(start(browser, syncd)).query)
        assert query["code_challenge_method"] == ["S256"]
        assert len(query["code_challenge"][0]) == 43  # base64url of a SHA-256
        assert query["state"][0] and query["nonce"][0]
        assert query["scope"] == ["openid email profile"]
        assert browser.cookies.get("syncd_oidc")


def test_pkce_verifier_sent_matches_the_challenge(syncd: ServerProcess,
                                                  gateway: Gateway) -> None:
    # The provider does not enforce PKCE, so what syncd sends is checked on the wire.
    with httpx.Client() as browser:
        authorize = start(browser, syncd)
        challenge = parse_qs(urlsplit(authorize).query)["code_challenge"][0]
        back = login_at_provider(browser, authorize,
                                 person(gateway, f"p-{uuid.uuid4().hex[:8]}@example.com"))
        app_code(browser.get(back))
    form = gateway.token_requests[-1]
    verifier = form["code_verifier"][0]
    assert 43 <= len(verifier) <= 128 and form["grant_type"] == ["authorization_code"]
    digest = hashlib.sha256(verifier.encode()).digest()
    assert base64.urlsafe_b64encode(digest).rstrip(b"=").decode() == challenge


def test_new_account(syncd: ServerProcess, gateway: Gateway,
                     db: psycopg.Connection[Any]) -> None:
    email = f"new-{uuid.uuid4().hex[:8]}@example.com"
    sub = person(gateway, email)
    first = sign_in(syncd, sub)
    assert first["user"]["email"] == email and first["user"]["name"] == "Grace"
    me = httpx.get(f"{syncd.base_url}/v1/auth/me",
                   headers={"Authorization": f"Bearer {first['access_token']}"})
    assert me.status_code == 200 and me.json()["device_id"] == first["device_id"]
    assert me.json()["user"]["email_verified"] is True  # the provider vouched for it
    devices = httpx.get(f"{syncd.base_url}/v1/devices",
                        headers={"Authorization": f"Bearer {first['access_token']}"}).json()
    assert [(d["name"], d["platform"]) for d in devices["devices"]] == [("Phone", "ios")]
    assert devices["devices"][0]["last_ip"] == "127.0.0.1"  # where the code was redeemed
    r = httpx.post(f"{syncd.base_url}/v1/auth/refresh",
                   json={"refresh_token": first["refresh_token"]})
    assert r.status_code == 200
    # The account has no password: a password login fails as a wrong one would.
    r = httpx.post(f"{syncd.base_url}/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert error_code(r, 401) == "invalid_credentials"
    # The same identity signs in to the same account, as a second device.
    second = sign_in(syncd, sub)
    assert second["user"]["id"] == first["user"]["id"]
    assert second["device_id"] != first["device_id"]
    assert identities(db, email) == 1


def alive(api: Api, d: Device) -> bool:
    return d.get("/v1/auth/me").status_code == 200


def refreshes(api: Api, d: Device) -> bool:
    return api.post("/v1/auth/refresh",
                    json={"refresh_token": d.refresh_token}).status_code == 200


def mailed_token(syncd: ServerProcess, to: str) -> str:
    """The token of the link mailed to `to` (with no SMTP_URL, mails go to the output)."""
    pattern = re.compile(rf"mail to {re.escape(to)}:.*?token\W+([A-Za-z0-9_-]{{20,}})", re.S)
    for _ in range(600):  # the outbox worker sends it soon after the request commits
        found = pattern.search(syncd.log())
        if found:
            return found.group(1)
        time.sleep(0.05)
    raise AssertionError(f"no mail to {to} in the server's output")


def test_links_to_an_existing_account_by_verified_email(
        syncd: ServerProcess, gateway: Gateway, db: psycopg.Connection[Any]) -> None:
    with Api(syncd.base_url) as api:
        email = api.register("Ada")
        password_user = api.login(email)
        db.execute("UPDATE users SET email_verified_at = now() WHERE email = %s", (email,))
        got = sign_in(syncd, person(gateway, email.upper(), verified=True))
        assert got["user"]["id"] == password_user.user_id
        assert identities(db, email) == 1
        # The account was the address's owner's already: their password and devices stay.
        assert alive(api, password_user) and refreshes(api, password_user)
        assert api.login(email, "again").user_id == password_user.user_id


def test_squatter_loses_an_account_whose_email_syncd_never_verified(
        syncd: ServerProcess, gateway: Gateway, db: psycopg.Connection[Any]) -> None:
    """Someone registers the victim's address with a password (never verifying it), keeps
    a device, and asks to move the account to an address of theirs. The victim then signs
    in through the provider: the account becomes theirs alone."""
    own = f"squatter-{uuid.uuid4().hex[:8]}@example.com"
    with Api(syncd.base_url) as api:
        email = api.register("Squatter")
        squatter = api.login(email)
        r = api.post("/v1/auth/email", json={"password": PASSWORD, "email": own},
                     headers=squatter.headers)
        assert r.status_code == 202, r.text
        change = mailed_token(syncd, own)

        victim = sign_in(syncd, person(gateway, email))
        assert victim["user"]["id"] == squatter.user_id  # the account, claimed
        assert not alive(api, squatter) and not refreshes(api, squatter)
        r = api.post("/v1/auth/login", json={"email": email, "password": PASSWORD,
                                             "device": {"name": "x", "platform": "test"}})
        assert error_code(r, 401) == "invalid_credentials"
        # The pending change of address cannot take the account away afterwards.
        r = api.get("/v1/auth/verify", params={"token": change})
        assert error_code(r, 400) == "invalid_token"
        me = api.get("/v1/auth/me",
                     headers={"Authorization": f"Bearer {victim['access_token']}"})
        assert me.status_code == 200
        assert (me.json()["user"]["email"], me.json()["user"]["email_verified"]) == (email, True)
    assert identities(db, email) == 1


def test_identity_with_an_unverified_email_loses_the_account_to_a_verified_one(
        syncd: ServerProcess, gateway: Gateway, db: psycopg.Connection[Any]) -> None:
    """A provider account that does not verify its email made the account first: the
    owner's verified identity claims it, and the first identity no longer reaches it."""
    email = f"u-{uuid.uuid4().hex[:8]}@example.com"
    squatter_sub = person(gateway, email, verified=False)
    squatter = sign_in(syncd, squatter_sub)
    owner = sign_in(syncd, person(gateway, email))
    assert owner["user"]["id"] == squatter["user"]["id"]
    with Api(syncd.base_url) as api:
        gone = Device(api, squatter["user"]["id"], squatter["device_id"], email,
                      squatter["access_token"], squatter["refresh_token"])
        assert not alive(api, gone) and not refreshes(api, gone)
    with httpx.Client() as browser:
        back = login_at_provider(browser, start(browser, syncd), squatter_sub)
        assert error_code(browser.get(back), 409) == "oidc_email_unverified"
    assert identities(db, email) == 1


def test_unverified_email_does_not_take_an_existing_account(
        syncd: ServerProcess, gateway: Gateway, db: psycopg.Connection[Any]) -> None:
    with Api(syncd.base_url) as api:
        email = api.register("Ada")
    with httpx.Client() as browser:
        back = login_at_provider(browser, start(browser, syncd),
                                 person(gateway, email, verified=False))
        assert error_code(browser.get(back), 409) == "oidc_email_unverified"
    assert identities(db, email) == 0


def test_forged_state_is_refused(syncd: ServerProcess, gateway: Gateway) -> None:
    sub = person(gateway, f"s-{uuid.uuid4().hex[:8]}@example.com")
    with httpx.Client() as browser:
        back = login_at_provider(browser, start(browser, syncd), sub)
        forged = with_param(back, state="made-up-by-an-attacker")
        assert error_code(browser.get(forged), 400) == "oidc_state"
    # A real answer brought by another browser (a link sent to a victim) is refused too,
    # and the state is used up: the browser that started it cannot use it after that.
    with httpx.Client() as browser:
        back = login_at_provider(browser, start(browser, syncd), sub)
        with httpx.Client() as victim:
            assert error_code(victim.get(back), 400) == "oidc_state"
        assert error_code(browser.get(back), 400) == "oidc_state"


def test_wrong_nonce_is_refused(syncd: ServerProcess, gateway: Gateway,
                                db: psycopg.Connection[Any]) -> None:
    email = f"n-{uuid.uuid4().hex[:8]}@example.com"
    with httpx.Client() as browser:
        authorize = with_param(start(browser, syncd), nonce="not-the-one-syncd-sent")
        back = login_at_provider(browser, authorize, person(gateway, email))
        assert error_code(browser.get(back), 401) == "oidc_nonce"
    assert db.execute("SELECT 1 FROM users WHERE email = %s", (email,)).fetchone() is None


def test_code_of_another_sign_in_is_refused(syncd: ServerProcess, gateway: Gateway,
                                            db: psycopg.Connection[Any]) -> None:
    """A code injected into another attempt's answer (code substitution) does not sign in:
    the provider refuses it for the other PKCE verifier, or, where a provider does not check
    PKCE (as this one), the nonce in its ID token is not the attempt's."""
    email = f"c-{uuid.uuid4().hex[:8]}@example.com"
    with httpx.Client() as browser:
        stolen = login_at_provider(browser, start(browser, syncd), person(gateway, email))
        code = parse_qs(urlsplit(stolen).query)["code"][0]
        own = start(browser, syncd)
        state = parse_qs(urlsplit(own).query)["state"][0]
        injected = f"{syncd.base_url}/v1/auth/oidc/callback?" + urlencode(
            {"code": code, "state": state})
        r = browser.get(injected)
        assert (r.status_code, r.json()["error"]["code"]) in {(401, "oidc_nonce"),
                                                              (400, "oidc_code")}
    assert db.execute("SELECT 1 FROM users WHERE email = %s", (email,)).fetchone() is None


@pytest.mark.usefixtures("forging")
def test_id_token_signed_by_another_key_is_refused(
        syncd: ServerProcess, gateway: Gateway, db: psycopg.Connection[Any]) -> None:
    email = f"k-{uuid.uuid4().hex[:8]}@example.com"
    with httpx.Client() as browser:
        back = login_at_provider(browser, start(browser, syncd), person(gateway, email))
        assert error_code(browser.get(back), 401) == "oidc_id_token"
    assert db.execute("SELECT 1 FROM users WHERE email = %s", (email,)).fetchone() is None


def test_denied_at_the_provider(syncd: ServerProcess) -> None:
    with httpx.Client() as browser:
        authorize = start(browser, syncd)
        browser.get(authorize)
        r = browser.post(authorize, data={"action": "deny"})
        assert r.status_code == 302
        assert error_code(browser.get(r.headers["location"]), 400) == "oidc_denied"


def test_bad_codes_for_the_app(syncd: ServerProcess) -> None:
    url = f"{syncd.base_url}/v1/auth/oidc/token"
    assert error_code(httpx.post(url, json={"code": "guessed"}), 400) == "oidc_code_invalid"
    assert error_code(httpx.post(url, json={"code": ""}), 400) == "validation"
    assert error_code(httpx.post(url, content=b"{"), 400) == "malformed_body"


def test_off_unless_configured(api: Api) -> None:
    r = api.get("/v1/auth/oidc/start")
    assert error_code(r, 404) == "oidc_disabled"


def test_a_password_reset_unlinks_an_identity_with_an_unverified_email(
        syncd: ServerProcess, gateway: Gateway, db: psycopg.Connection[Any]) -> None:
    """The account was made through a provider that did not verify the address; its owner
    takes it back by a reset mail, and the first identity no longer reaches it."""
    email = f"r-{uuid.uuid4().hex[:8]}@example.com"
    squatter_sub = person(gateway, email, verified=False)
    sign_in(syncd, squatter_sub)
    with Api(syncd.base_url) as api:
        assert api.post("/v1/auth/password/forgot", json={"email": email}).status_code == 202
        r = api.post("/v1/auth/password/reset",
                     json={"token": mailed_token(syncd, email), "password": PASSWORD})
        assert r.status_code == 204, r.text
        assert api.login(email).email == email
    with httpx.Client() as browser:
        back = login_at_provider(browser, start(browser, syncd), squatter_sub)
        assert error_code(browser.get(back), 409) == "oidc_email_unverified"
    assert identities(db, email) == 0


def cli(*args: str, url: str, tmp: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": url, "SYNCD_DATA_DIR": str(tmp)}
    return subprocess.run([sys.executable, "-m", "syncd", *args], env=env,
                          capture_output=True, text=True, timeout=120)


def test_export_and_import_carry_the_identity(
        syncd: ServerProcess, gateway: Gateway, pg_url: str, pg_admin_url: str,
        tmp_path: Path) -> None:
    email = f"moved-{uuid.uuid4().hex[:8]}@example.com"
    sub = person(gateway, email)
    before = sign_in(syncd, sub)
    out = tmp_path / "export.json"
    run = cli("export", "--user", email, "--out", str(out), url=pg_url, tmp=tmp_path)
    assert run.returncode == 0, run.stderr
    doc = json.loads(out.read_bytes())
    assert [(i["issuer"], i["subject"]) for i in doc["identities"]] == [
        (gateway.url.rstrip("/"), sub)]
    empty = fresh_database(pg_admin_url)
    target = oidc_server(empty, tmp_path / "target", gateway)
    try:
        run = cli("import", str(out), url=empty, tmp=tmp_path)
        assert run.returncode == 0, run.stderr
        target.start()
        after = sign_in(target, sub)  # the same identity reaches the same account
        assert after["user"]["id"] == before["user"]["id"]
        me = httpx.get(f"{target.base_url}/v1/auth/me",
                       headers={"Authorization": f"Bearer {after['access_token']}"})
        assert me.json()["user"]["email_verified"] is True
        # An identity linked to an account there already: the import is refused.
        doc["user"] |= {"id": str(uuid.uuid4()), "email": f"other-{email}"}
        doc["notes"] = doc["projects"] = doc["events"] = []
        out.write_text(json.dumps(doc))
        run = cli("import", str(out), url=empty, tmp=tmp_path)
        assert run.returncode == 1 and "OpenID identity" in run.stderr
    finally:
        target.stop()
        drop_database(pg_admin_url, empty)
