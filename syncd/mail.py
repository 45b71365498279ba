"""Mail: an outbox table and the worker that empties it.

A mail is a row of `outbox`, inserted in the transaction that has a reason to send it (the
token it carries), so it exists exactly when that reason committed. The worker, a task of
the app's lifespan on every node, claims one due row at a time with `FOR UPDATE SKIP
LOCKED`, sends it and sets `sent_at` in that same transaction: a crash before the commit
leaves the row unsent and locked by nobody, and the next worker (after a restart, or on
another node) sends it. Only a crash in the instant between the SMTP server's acceptance
and the commit can send a mail twice; both copies then carry the row's Message-ID.
A sent mail's body (it holds a token in clear) is emptied in the transaction that marks
it sent; rows and tokens are deleted 30 days after they are done with.
A failed send is retried after `mail_retry` seconds, doubling up to an hour, at most
`mail_attempts` times; a permanent refusal of the mail (its recipient, or its content
with a 5xx) is given up at once.

`SMTP_URL`: `smtp://host:25` (plain, a local relay), `smtp+starttls://user:pass@host:587`
(STARTTLS, required), `smtps://user:pass@host:465` (TLS from the start); user and password
are percent-decoded. Certificates are checked against the system's authorities
(`SSL_CERT_FILE` names others). Unset, mails are printed to the server's output.
"""

from __future__ import annotations

import asyncio
import logging
import smtplib
import ssl
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import formatdate, parseaddr
from urllib.parse import unquote, urlsplit
from uuid import UUID

from syncd.config import Settings
from syncd.db import Conn, Database

log = logging.getLogger("syncd.mail")
SCHEMES = ("smtp", "smtp+starttls", "smtps")
MAX_DELAY = 3600.0
POLL = 2.0  # seconds between looks at the outbox for mail queued by other nodes or due again
PRUNE_EVERY = 3600.0  # seconds between clean-ups of old mails and tokens
KEEP_DAYS = 30  # a sent mail's row (without its body), an expired token: kept this long


@dataclass(frozen=True)
class Mail:
    to: str
    subject: str
    body: str


async def enqueue(conn: Conn, user_id: UUID | None, mail: Mail) -> None:
    """Queue a mail in the caller's transaction; call `Outbox.wake` after it commits."""
    await conn.execute(
        "INSERT INTO outbox (user_id, recipient, subject, body) VALUES (%s, %s, %s, %s)",
        (user_id, mail.to, mail.subject, mail.body))


def check_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES or not parts.hostname:
        raise SystemExit(f"SMTP_URL must be {', '.join(s + '://host' for s in SCHEMES)}")


def smtp_send(url: str, message: EmailMessage, timeout: float = 30) -> None:
    """Send one message over SMTP (blocking: run it in a thread)."""
    parts = urlsplit(url)
    host = parts.hostname or "localhost"
    client: smtplib.SMTP
    if parts.scheme == "smtps":
        client = smtplib.SMTP_SSL(host, parts.port or 465, timeout=timeout,
                                  context=ssl.create_default_context())
    else:
        starttls = parts.scheme == "smtp+starttls"
        client = smtplib.SMTP(host, parts.port or (587 if starttls else 25), timeout=timeout)
    with client:
        if parts.scheme == "smtp+starttls":
            client.starttls(context=ssl.create_default_context())
        if parts.username:
            client.login(unquote(parts.username), unquote(parts.password or ""))
        client.send_message(message)


def print_mail(message: EmailMessage) -> None:
    """The development transport: the mail on the server's output, links clickable."""
    print(f"syncd: mail to {message['To']}: {message['Subject']}\n"
          f"{message.get_content().rstrip()}\n", file=sys.stdout, flush=True)


def _permanent(error: Exception) -> bool:
    """A refusal of this mail itself. A refused login, certificate or sender is the
    server's configuration: retried, so that mail waits for the fix instead of being lost."""
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        return True
    return isinstance(error, smtplib.SMTPDataError) and error.smtp_code >= 500


class Outbox:
    """The worker: sends due mails until there are none, then waits for `wake` or POLL."""

    def __init__(self, db: Database, settings: Settings,
                 transport: Callable[[EmailMessage], None] | None = None) -> None:
        self.db = db
        self.settings = settings
        url = settings.smtp_url
        if url:
            check_url(url)
        self.transport = transport or (
            (lambda message: smtp_send(url, message)) if url else print_mail)
        self.domain = parseaddr(settings.mail_from)[1].rpartition("@")[2] or "localhost"
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    def message(self, row: dict[str, object]) -> EmailMessage:
        message = EmailMessage()
        message["From"] = self.settings.mail_from
        message["To"] = str(row["recipient"])
        message["Subject"] = str(row["subject"])
        created = row["created_at"]
        assert isinstance(created, datetime)
        message["Date"] = formatdate(created.timestamp(), usegmt=True)
        # The same for every attempt: a copy sent twice is recognisable as one mail.
        message["Message-ID"] = f"<outbox.{row['id']}.{int(created.timestamp())}@{self.domain}>"
        message.set_content(str(row["body"]))
        return message

    async def send_one(self) -> bool:
        """Send the next due mail, if any; True when there was one."""
        async def tx(conn: Conn) -> bool:
            cur = await conn.execute(
                """SELECT id, recipient, subject, body, attempts, created_at FROM outbox
                   WHERE sent_at IS NULL AND failed_at IS NULL AND next_at <= now()
                   ORDER BY next_at, id LIMIT 1 FOR UPDATE SKIP LOCKED""")
            row = await cur.fetchone()
            if row is None:
                return False
            try:
                await asyncio.to_thread(self.transport, self.message(row))
            except (OSError, smtplib.SMTPException) as e:
                attempts = row["attempts"] + 1
                give_up = _permanent(e) or attempts >= self.settings.mail_attempts
                delay = min(MAX_DELAY, self.settings.mail_retry * 2 ** (attempts - 1))
                log.warning("mail %s not sent (attempt %s): %s", row["id"], attempts,
                            type(e).__name__)
                await conn.execute(
                    """UPDATE outbox SET attempts = %s, last_error = %s,
                              next_at = now() + make_interval(secs => %s),
                              failed_at = CASE WHEN %s THEN now() END WHERE id = %s""",
                    (attempts, str(e)[:500], delay, give_up, row["id"]))
                return True
            # The body holds a token in clear: once sent it is kept nowhere here.
            await conn.execute(
                """UPDATE outbox SET sent_at = now(), attempts = attempts + 1, body = ''
                   WHERE id = %s""", (row["id"],))
            return True

        # Once only: a retried transaction could send a mail twice.
        return await self.db.run(tx, attempts=1)

    async def prune(self) -> None:
        """Forget mails sent or given up a while ago, and tokens long expired."""
        async def tx(conn: Conn) -> None:
            await conn.execute(
                f"""DELETE FROM outbox WHERE coalesce(sent_at, failed_at)
                    < now() - interval '{KEEP_DAYS} days'""")
            await conn.execute("DELETE FROM account_tokens WHERE expires_at < now() - "
                               f"interval '{KEEP_DAYS} days'")

        await self.db.run(tx)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        pruned = loop.time()
        while True:
            self._wake.clear()
            try:
                while await self.send_one():
                    pass
                if loop.time() - pruned > PRUNE_EVERY:
                    pruned = loop.time()
                    await self.prune()
            except Exception:  # the database is down: keep the worker, look again later
                log.exception("the mail worker could not read the outbox")
            try:
                await asyncio.wait_for(self._wake.wait(), POLL)
            except TimeoutError:
                pass


@asynccontextmanager
async def running(outbox: Outbox) -> AsyncIterator[Outbox]:
    """The worker as a task of the app's lifespan. At shutdown a send in flight is
    cancelled: its transaction rolls back and the mail stays queued (sent again if the
    SMTP server had taken it already, the one case of a copy)."""
    task = asyncio.create_task(outbox.run(), name="syncd-mail")
    try:
        yield outbox
    finally:
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
