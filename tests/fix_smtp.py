"""A real SMTP server (aiosmtpd) on a free loopback port that keeps what it receives, and a
syncd server process that mails through it."""

from __future__ import annotations

import asyncio
import email
import email.policy
import gc
import re
import ssl
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session

from tests.fix_server import ServerProcess, free_port
from tests.fix_services import drop_database, fresh_database

TOKEN = re.compile(r'token(?:=|": ")([A-Za-z0-9_-]{20,})')


class Inbox:
    """What the SMTP server received, in order."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.lock = threading.Lock()
        # While `hold` is set, a mail's DATA is held unanswered (a send in flight) until
        # `release`, then refused.
        self.hold = threading.Event()
        self.release = threading.Event()
        self.held = 0

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        if self.hold.is_set():
            self.held += 1
            await asyncio.to_thread(self.release.wait)
            return "451 held by the test, not delivered"
        assert isinstance(envelope.content, bytes)
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        with self.lock:
            self.messages.append(message)
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[EmailMessage]:
        with self.lock:
            return [m for m in self.messages if m["To"] == address]

    def wait(self, address: str, count: int = 1, timeout: float = 60) -> list[EmailMessage]:
        """The mails to `address`, once there are `count` of them."""
        deadline = time.monotonic() + timeout
        while len(found := self.to(address)) < count:
            assert time.monotonic() < deadline, f"{count} mail(s) to {address}: got {found}"
            time.sleep(0.05)
        return found


def token_of(message: EmailMessage) -> str:
    body = message.get_body(("plain",))
    assert body is not None
    match = TOKEN.search(body.get_content())
    assert match, body.get_content()
    return match.group(1)


class SmtpServer:
    def __init__(self, port: int | None = None, tls: ssl.SSLContext | None = None,
                 logins: dict[str, str] | None = None, implicit_tls: bool = False) -> None:
        self.port = port or free_port()
        self.inbox = Inbox()
        self.logins = logins
        kwargs: dict[str, Any] = {}
        if tls is not None and implicit_tls:
            kwargs["ssl_context"] = tls
        elif tls is not None:
            kwargs["tls_context"] = tls
            kwargs["require_starttls"] = True
        if logins is not None:
            kwargs["authenticator"] = self._authenticate
            kwargs["auth_required"] = True
            # aiosmtpd sees STARTTLS only as TLS: over implicit TLS it would hide AUTH.
            kwargs["auth_require_tls"] = not implicit_tls
        self.controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port,
                                     **kwargs)

    def _authenticate(self, server: Any, session: Session, envelope: Envelope,
                      mechanism: str, data: Any) -> AuthResult:
        ok = (isinstance(data, LoginPassword) and self.logins is not None
              and self.logins.get(data.login.decode()) == data.password.decode())
        return AuthResult(success=ok)

    def start(self) -> None:
        self.controller.start()

    def stop(self) -> None:
        self.inbox.release.set()
        self.controller.stop()
        # aiosmtpd leaves the sockets of handshakes that failed (the clients that did not
        # trust its certificate) to the collector: gather them now, not in a later test.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            gc.collect()


@pytest.fixture(scope="module")
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer()
    server.start()
    yield server
    server.stop()


MailServer = Callable[..., ServerProcess]
# Quick retries, no mail rate limit, links to a public address.
MAIL_ENV = {"SYNCD_MAIL_RETRY": "0.2", "SYNCD_RATE_MAIL": "0",
            "SYNCD_PUBLIC_URL": "https://sync.example"}


@pytest.fixture
def mail_server_factory(pg_admin_url: str, tmp_path: Path) -> Iterator[MailServer]:
    """Start syncd processes mailing through a given SMTP URL, each on a database of its own
    (a server sends any mail of its database's outbox); stopped and dropped at the end."""
    started: list[tuple[ServerProcess, str]] = []

    def start(smtp_url: str, **env: str) -> ServerProcess:
        url = fresh_database(pg_admin_url)
        proc = ServerProcess(url, tmp_path / f"server{len(started)}",
                             env={**MAIL_ENV, "SMTP_URL": smtp_url, **env})
        started.append((proc, url))
        proc.start()
        return proc

    yield start
    for proc, url in started:
        proc.stop()
        drop_database(pg_admin_url, url)
