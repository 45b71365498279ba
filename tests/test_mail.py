"""The outbox and its worker with real processes: a server killed with -9 while a mail is
queued but not sent, and while it is being sent, sends it once after its restart; SMTP
with STARTTLS or TLS and a login; without SMTP_URL, mails on the server's output."""

from __future__ import annotations

import asyncio
import ssl
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
import trustme

from tests.fix_server import ServerProcess, free_port
from tests.fix_smtp import MailServer, SmtpServer, token_of
from tests.helpers import Api


def outbox_row(server: ServerProcess, email: str) -> tuple[Any, ...]:
    """(attempts, sent) of the one mail queued for `email` in the server's database."""
    with psycopg.connect(server.database_url) as db:
        rows = db.execute("SELECT attempts, sent_at IS NOT NULL FROM outbox "
                          "WHERE recipient = %s", (email,)).fetchall()
    assert len(rows) == 1, rows
    return tuple(rows[0])


def wait_row(server: ServerProcess, email: str, check: Any, timeout: float = 60,
             ) -> tuple[Any, ...]:
    deadline = time.monotonic() + timeout
    while not check(row := outbox_row(server, email)):
        assert time.monotonic() < deadline, row
        time.sleep(0.05)
    return row


def register(server: ServerProcess) -> str:
    with Api(server.base_url) as api:
        return api.register()


def test_queued_mail_survives_kill_9(mail_server_factory: MailServer) -> None:
    """Killed while its SMTP server is down: the mail is in the outbox, unsent; after the
    restart, with the SMTP server up, it is sent exactly once."""
    port = free_port()
    server = mail_server_factory(f"smtp://127.0.0.1:{port}")
    email = register(server)
    wait_row(server, email, lambda r: r[0] >= 2)  # tried and failed twice: nothing listens
    server.kill()
    assert outbox_row(server, email)[1] is False

    smtp = SmtpServer(port)
    smtp.start()
    try:
        server.start()
        [mail] = smtp.inbox.wait(email)
        wait_row(server, email, lambda r: r[1])  # marked sent: it will never go again
        assert len(smtp.inbox.to(email)) == 1
        with psycopg.connect(server.database_url) as db:  # its token is kept nowhere now
            assert db.execute("SELECT body FROM outbox WHERE recipient = %s",
                              (email,)).fetchone() == ("",)
        with Api(server.base_url) as api:
            r = api.get("/v1/auth/verify", params={"token": token_of(mail)})
            assert r.status_code == 200, r.text
    finally:
        smtp.stop()


def test_mail_in_flight_survives_kill_9(mail_server_factory: MailServer) -> None:
    """Killed while the SMTP server holds the mail's DATA unanswered (the worker has the row
    locked, mid-send): after the restart the mail is sent once."""
    smtp = SmtpServer()
    smtp.inbox.hold.set()
    smtp.start()
    try:
        server = mail_server_factory(f"smtp://127.0.0.1:{smtp.port}")
        email = register(server)
        deadline = time.monotonic() + 60
        while smtp.inbox.held == 0:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        server.kill()
        smtp.inbox.hold.clear()
        smtp.inbox.release.set()  # the held DATA is refused: that copy never arrives
        assert outbox_row(server, email) == (0, False)

        server.start()
        smtp.inbox.wait(email)
        wait_row(server, email, lambda r: r[1])
        assert len(smtp.inbox.to(email)) == 1
    finally:
        smtp.stop()


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> tuple[trustme.CA, Path]:
    authority = trustme.CA()
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    authority.cert_pem.write_to_path(str(path))
    return authority, path


@pytest.mark.parametrize("scheme", ["smtp+starttls", "smtps"])
# aiosmtpd counts only STARTTLS as TLS: over implicit TLS it warns that AUTH is in clear.
@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")
def test_smtp_over_tls_with_a_login(scheme: str, ca: tuple[trustme.CA, Path],
                                    mail_server_factory: MailServer) -> None:
    authority, ca_file = ca
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(context)
    smtp = SmtpServer(tls=context, logins={"syncd@example.com": "p@ss word"},
                      implicit_tls=scheme == "smtps")
    smtp.start()
    try:
        good = mail_server_factory(
            f"{scheme}://syncd%40example.com:p%40ss%20word@127.0.0.1:{smtp.port}",
            SSL_CERT_FILE=str(ca_file))
        bad = mail_server_factory(
            f"{scheme}://syncd%40example.com:wrong@127.0.0.1:{smtp.port}",
            SSL_CERT_FILE=str(ca_file))
        untrusted = mail_server_factory(
            f"{scheme}://syncd%40example.com:p%40ss%20word@127.0.0.1:{smtp.port}")
        email = register(good)
        [mail] = smtp.inbox.wait(email)
        assert mail["Subject"] == "Verify your email address"
        assert mail["Message-ID"].startswith("<outbox.")
        for server in (bad, untrusted):
            refused = register(server)
            # Refused: kept for a retry (a fixed configuration sends it), never lost.
            wait_row(server, refused, lambda r: r[0] >= 1)
            assert smtp.inbox.to(refused) == []
            with psycopg.connect(server.database_url) as db:
                assert db.execute(
                    "SELECT last_error IS NOT NULL, failed_at IS NULL, sent_at IS NULL "
                    "FROM outbox WHERE recipient = %s", (refused,)).fetchone() == (
                        True, True, True)
    finally:
        smtp.stop()


def test_without_smtp_url_mails_are_printed(mail_server_factory: MailServer) -> None:
    server = mail_server_factory("", SYNCD_PUBLIC_URL="")
    email = register(server)
    deadline = time.monotonic() + 60
    while f"syncd: mail to {email}" not in (out := server.log()):
        assert time.monotonic() < deadline, out
        time.sleep(0.05)
    link = f"{server.base_url}/v1/auth/verify?token="
    assert link in out
    token = out.split(link, 1)[1].split()[0]
    with Api(server.base_url) as api:
        assert api.get("/v1/auth/verify", params={"token": token}).status_code == 200


def test_prune_forgets_old_mails_and_tokens(api: Api, pg_url: str,
                                            db: psycopg.Connection[Any]) -> None:
    from syncd.config import Settings
    from syncd.db import Database
    from syncd.mail import Outbox

    d = api.user()
    rows = [("old sent", "now() - interval '31 days'", "NULL"),
            ("old failed", "NULL", "now() - interval '31 days'"),
            ("recent", "now() - interval '29 days'", "NULL"), ("queued", "NULL", "NULL")]
    for subject, sent, failed in rows:
        db.execute(f"INSERT INTO outbox (user_id, recipient, subject, body, sent_at, "
                   f"failed_at, next_at) VALUES (%s, %s, %s, '', {sent}, {failed}, "
                   f"now() + interval '1 day')", (d.user_id, d.email, subject))
    for name, expires in (b"expired", "now() - interval '31 days'"), (b"live", "now()"):
        db.execute(f"INSERT INTO account_tokens VALUES (%s, %s, 'reset', %s, {expires})",
                   (name, d.user_id, d.email))

    async def prune() -> None:
        store = Database(pg_url, 1, 1)
        await store.open()
        try:
            await Outbox(store, Settings()).prune()
        finally:
            await store.close()

    asyncio.run(prune())
    left = db.execute("SELECT subject FROM outbox WHERE user_id = %s AND subject = ANY(%s) "
                      "ORDER BY subject", (d.user_id, [r[0] for r in rows])).fetchall()
    assert left == [("queued",), ("recent",)]
    tokens = db.execute("SELECT token_hash FROM account_tokens WHERE token_hash = ANY(%s)",
                        ([b"expired", b"live"],)).fetchall()
    assert tokens == [(b"live",)]
