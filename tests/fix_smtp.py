"""A real SMTP server (aiosmtpd) on a free loopback port that keeps what it receives, and a
syncd server process that mails through it."""

from __future__ import annotations

import email
import email.policy
import re
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session

from tests.fix_server import ServerProcess, free_port

TOKEN = re.compile(r'token(?:=|": ")([A-Za-z0-9_-]{20,})')


class Inbox:
    """What the SMTP server received, in order."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
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
                 logins: dict[str, str] | None = None) -> None:
        self.port = port or free_port()
        self.inbox = Inbox()
        self.logins = logins
        kwargs: dict[str, Any] = {}
        if tls is not None:
            kwargs["tls_context"] = tls
            kwargs["require_starttls"] = True
        if logins is not None:
            kwargs["authenticator"] = self._authenticate
            kwargs["auth_required"] = True
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
        self.controller.stop()


@pytest.fixture(scope="module")
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer()
    server.start()
    yield server
    server.stop()


MailServer = Callable[..., ServerProcess]


@pytest.fixture(scope="module")
def mail_server_factory(pg_url: str, tmp_path_factory: pytest.TempPathFactory,
                        ) -> Iterator[MailServer]:
    """Start syncd processes that mail through a given SMTP URL; all stopped at the end."""
    started: list[ServerProcess] = []

    def start(smtp_url: str, **env: str) -> ServerProcess:
        root: Path = tmp_path_factory.mktemp("mailserver")
        proc = ServerProcess(pg_url, root, env={
            "SMTP_URL": smtp_url, "SYNCD_MAIL_RETRY": "0.2", "SYNCD_RATE_MAIL": "0",
            "SYNCD_PUBLIC_URL": "https://sync.example", **env})
        proc.start()
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()
