"""Keeping an account: changing and resetting the password, verifying and changing the
email address, and the operator's versions of these (`syncd user`).

A reset or verification travels as a token in a mail: 32 random bytes, of which only the
SHA-256 is stored (`account_tokens`), spent by the one UPDATE that checks it is unused and
unexpired, so it works once. Its mail goes into the outbox in the transaction that stores
it (syncd/mail.py). A new password signs the other devices out (a reset: all of them) and
spends the account's outstanding reset tokens. A reset proves the address, so it verifies
it too, and unlinks the OpenID identities linked to the account while it was unproven
(syncd/signin.py). A new address takes effect when its verification link is followed.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Any
from uuid import UUID

from syncd import erase
from syncd.auth import hash_password, normalise_email
from syncd.config import Settings
from syncd.db import Conn, Database
from syncd.errors import BadRequest, Conflict, NotFound
from syncd.mail import Mail, Outbox, enqueue
from syncd.types import Principal

USER_FIELDS = "id, email, name, email_verified_at"


def _hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def _invalid() -> BadRequest:
    return BadRequest("the token is not valid (unknown, used or expired)", {"field": "token"},
                      code="invalid_token")


async def sign_out(conn: Conn, user: UUID, keep: UUID | None = None) -> list[UUID]:
    """Revoke the user's devices but `keep`; their refresh tokens go with them."""
    cur = await conn.execute(
        """UPDATE devices SET revoked_at = now()
           WHERE user_id = %s AND revoked_at IS NULL AND id IS DISTINCT FROM %s
           RETURNING id""", (user, keep))
    ended = [r["id"] for r in await cur.fetchall()]
    await conn.execute("DELETE FROM refresh_tokens WHERE device_id = ANY(%s)", (ended,))
    return ended


async def _set_password(conn: Conn, user: UUID, hashed: str) -> None:
    await conn.execute("UPDATE users SET password_hash = %s WHERE id = %s", (hashed, user))
    await conn.execute(
        "DELETE FROM account_tokens WHERE user_id = %s AND purpose = 'reset'", (user,))


async def seen(db: Database, device: UUID, ip: str | None, user_agent: str | None) -> None:
    """Where a device was last seen from: its login and each token refresh."""
    async def tx(conn: Conn) -> None:
        await conn.execute(
            """UPDATE devices SET last_ip = %s, user_agent = %s, last_seen_at = now()
               WHERE id = %s""", (ip, (user_agent or "")[:400] or None, device))

    await db.run(tx)


class Accounts:
    def __init__(self, db: Database, settings: Settings, outbox: Outbox) -> None:
        self.db = db
        self.settings = settings
        self.outbox = outbox

    # --- mails ----------------------------------------------------------------------------

    async def _token(self, conn: Conn, user: UUID, purpose: str, email: str, ttl: int) -> str:
        token = secrets.token_urlsafe(32)
        await conn.execute(
            """INSERT INTO account_tokens (token_hash, user_id, purpose, email, expires_at)
               VALUES (%s, %s, %s, %s, now() + make_interval(secs => %s))""",
            (_hash(token), user, purpose, email, ttl))
        return token

    async def verification_mail(self, conn: Conn, user: UUID, email: str) -> None:
        """Queue the mail whose link verifies `email` for the user (in the caller's tx)."""
        token = await self._token(conn, user, "verify", email, self.settings.verify_ttl)
        app = self.settings.app_url
        link = (f"{app.rstrip('/')}/verify-email?token={token}" if app else
                f"{self.settings.base_url()}/v1/auth/verify?token={token}")
        hours = max(1, self.settings.verify_ttl // 3600)
        await enqueue(conn, user, Mail(email, "Verify your email address", (
            f"Follow this link to verify {email} for your account:\n\n{link}\n\n"
            f"It works once, within {hours} hours. If you did not ask for this, "
            "ignore this mail.")))

    async def _reset_mail(self, conn: Conn, user: UUID, email: str) -> None:
        token = await self._token(conn, user, "reset", email, self.settings.reset_ttl)
        app = self.settings.app_url
        how = (f"Follow this link to choose a new password:\n\n"
               f"{app.rstrip('/')}/reset-password?token={token}" if app else
               f"Choose a new password with POST {self.settings.base_url()}"
               f"/v1/auth/password/reset and the JSON body\n\n"
               f'{{"token": "{token}", "password": "<new password>"}}')
        minutes = max(1, self.settings.reset_ttl // 60)
        await enqueue(conn, user, Mail(email, "Reset your password", (
            f"Someone asked to reset the password of the account {email}.\n\n{how}\n\n"
            f"This works once, within {minutes} minutes, and signs out every device. "
            "If it was not you, ignore this mail: the password stays as it is.")))

    # --- the user's own -------------------------------------------------------------------

    async def change_password(self, who: Principal, current: str, new: str,
                              keep_devices: bool) -> list[UUID]:
        """Check the current password, set the new one; returns the devices signed out."""
        await erase.check_password(self.db, who, current)
        hashed = await hash_password(new)

        async def tx(conn: Conn) -> list[UUID]:
            await _set_password(conn, who.user_id, hashed)
            return [] if keep_devices else await sign_out(conn, who.user_id, who.device_id)

        return await self.db.run(tx)

    async def request_reset(self, email: str) -> None:
        """Mail a reset link if the account exists; the caller answers the same either way."""
        email = normalise_email(email)

        async def tx(conn: Conn) -> bool:
            cur = await conn.execute("SELECT id FROM users WHERE email = %s", (email,))
            row = await cur.fetchone()
            if row is not None:
                await self._reset_mail(conn, row["id"], email)
            return row is not None

        if await self.db.run(tx):
            self.outbox.wake()

    async def reset(self, token: str, new: str) -> tuple[UUID, list[UUID]]:
        """Spend a reset token: the new password, the address verified, every device out."""
        hashed = await hash_password(new)

        async def tx(conn: Conn) -> tuple[UUID, list[UUID]]:
            cur = await conn.execute(
                """UPDATE account_tokens t SET used_at = now() FROM users u
                   WHERE t.token_hash = %s AND t.purpose = 'reset' AND t.used_at IS NULL
                     AND t.expires_at > now() AND u.id = t.user_id AND u.email = t.email
                   RETURNING t.user_id""", (_hash(token),))
            row = await cur.fetchone()
            if row is None:
                raise _invalid()
            user = row["user_id"]
            await _set_password(conn, user, hashed)
            # An OpenID identity linked while the address was unproven may be whoever made
            # the account with someone else's address: the address's owner now has it alone.
            await conn.execute(
                """DELETE FROM oidc_identities i USING users u
                   WHERE i.user_id = u.id AND u.id = %s AND u.email_verified_at IS NULL""",
                (user,))
            await conn.execute(
                """UPDATE users SET email_verified_at = coalesce(email_verified_at, now())
                   WHERE id = %s""", (user,))
            return user, await sign_out(conn, user)

        return await self.db.run(tx)

    async def resend_verification(self, who: Principal) -> bool:
        """Mail a new verification link for the current address; False if it is verified."""
        async def tx(conn: Conn) -> bool:
            cur = await conn.execute(
                "SELECT email, email_verified_at FROM users WHERE id = %s", (who.user_id,))
            row = await cur.fetchone()
            if row is None or row["email_verified_at"] is not None:
                return False
            await self.verification_mail(conn, who.user_id, row["email"])
            return True

        sent = await self.db.run(tx)
        if sent:
            self.outbox.wake()
        return sent

    async def verify(self, token: str) -> dict[str, Any]:
        """Spend a verification token: its address becomes the account's, verified."""
        async def tx(conn: Conn) -> dict[str, Any]:
            cur = await conn.execute(
                """UPDATE account_tokens SET used_at = now()
                   WHERE token_hash = %s AND purpose = 'verify' AND used_at IS NULL
                     AND expires_at > now() RETURNING user_id, email""", (_hash(token),))
            row = await cur.fetchone()
            if row is None:
                raise _invalid()
            cur = await conn.execute("SELECT 1 FROM users WHERE email = %s AND id <> %s",
                                     (row["email"], row["user_id"]))
            if await cur.fetchone() is not None:
                raise Conflict("another account has this email now", code="email_taken")
            cur = await conn.execute(
                f"""UPDATE users SET email = %s, email_verified_at = now() WHERE id = %s
                    RETURNING {USER_FIELDS}""", (row["email"], row["user_id"]))
            user = await cur.fetchone()
            assert user is not None  # the token's user: its rows go with the account
            # Links still out for this or another address would set it again: void them.
            await conn.execute("""DELETE FROM account_tokens WHERE user_id = %s
                                  AND purpose = 'verify' AND used_at IS NULL""",
                               (row["user_id"],))
            return user

        return await self.db.run(tx)

    async def change_email(self, who: Principal, password: str, new_email: str) -> None:
        """Mail a verification link to the new address (which takes effect when followed)
        and a notice to the current one."""
        new_email = normalise_email(new_email)
        await erase.check_password(self.db, who, password)

        async def tx(conn: Conn) -> None:
            cur = await conn.execute("SELECT 1 FROM users WHERE email = %s", (new_email,))
            if await cur.fetchone() is not None:
                raise Conflict("an account with this email exists", code="email_taken")
            cur = await conn.execute("SELECT email FROM users WHERE id = %s", (who.user_id,))
            row = await cur.fetchone()
            if row is None:
                raise NotFound("the account no longer exists")
            await self.verification_mail(conn, who.user_id, new_email)
            await enqueue(conn, who.user_id, Mail(row["email"], "Your email address is changing", (
                f"Someone asked to change the email address of the account {row['email']} "
                f"to {new_email}. It changes when a link sent there is followed.\n\n"
                "If it was not you, change your password now.")))

        await self.db.run(tx)
        self.outbox.wake()

    # --- operators (`syncd user`) ---------------------------------------------------------

    async def find(self, email: str) -> dict[str, Any]:
        email = normalise_email(email)

        async def tx(conn: Conn) -> dict[str, Any] | None:
            cur = await conn.execute(f"SELECT {USER_FIELDS} FROM users WHERE email = %s",
                                     (email,))
            return await cur.fetchone()

        user = await self.db.run(tx, read_only=True)
        if user is None:
            raise NotFound(f"no account with email {email}")
        return user

    async def set_password(self, email: str, new: str, keep_devices: bool) -> list[UUID]:
        """An operator sets the password (an imported account's first one, say)."""
        user = (await self.find(email))["id"]
        hashed = await hash_password(new)

        async def tx(conn: Conn) -> list[UUID]:
            await _set_password(conn, user, hashed)
            return [] if keep_devices else await sign_out(conn, user)

        return await self.db.run(tx)

    async def mark_verified(self, email: str) -> None:
        user = (await self.find(email))["id"]

        async def tx(conn: Conn) -> None:
            await conn.execute(
                """UPDATE users SET email_verified_at = coalesce(email_verified_at, now())
                   WHERE id = %s""", (user,))

        await self.db.run(tx)
