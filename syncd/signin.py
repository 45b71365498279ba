"""Sign-in through an OpenID provider, on syncd's side: the attempts under way (state,
nonce, PKCE verifier, the browser that started each), the account a verified identity
maps to, and the one-time code that hands the sign-in to the app.

An identity (issuer, subject) once linked always signs in to its account. A new identity
links to the account holding its email only when the provider says the email is
verified; with no such account it gets a new one, with no password (a password login fails
until one is set). Tokens never travel in a URL: the browser brings the app a short-lived,
single-use code, and the app exchanges it for a device's tokens in a POST.

Linking to an account whose email syncd has not verified *claims* it: anyone can register
someone else's address with a password and wait, and a plain link would let them keep that
password and their devices in the account the address's owner then fills. So the provider's
word counts as the verification (the address becomes verified), and what only the
registrant had goes in the same transaction: the password (the owner sets one by a reset
mail), every device and its tokens, mailed links still out (a pending email change would
hand the account to another address), sign-in codes not yet redeemed, and the other
identities linked to it (one whose provider did not verify the email). This is what a
password reset does, and for the same reason: whoever proves the address owns the account.
Refusing the link instead (and asking for a reset) would make the owner prove the same
address twice and change nothing about the outcome.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from typing import Any
from uuid import UUID

from syncd.accounts import sign_out
from syncd.auth import normalise_email
from syncd.db import Conn, Database
from syncd.errors import BadRequest, Conflict
from syncd.oidc import Attempt, Identity

ATTEMPT_TTL = 600  # seconds a user has to sign in at the provider
HANDOFF_TTL = 120  # seconds the app has to redeem its code
NO_PASSWORD = "!"  # not an argon2 hash: a password login fails like a wrong password


def _hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


async def remember(db: Database, attempt: Attempt, browser: str, device_name: str,
                   platform: str) -> None:
    async def tx(conn: Conn) -> None:
        # The expired attempts go with each new one, so the table holds ~ATTEMPT_TTL's worth.
        await conn.execute("DELETE FROM oidc_attempts WHERE expires_at < now()")
        await conn.execute(
            """INSERT INTO oidc_attempts (state_hash, browser_hash, nonce, verifier,
                                          device_name, platform, expires_at)
               VALUES (%s, %s, %s, %s, %s, %s, now() + make_interval(secs => %s))""",
            (_hash(attempt.state), _hash(browser), attempt.nonce, attempt.verifier,
             device_name[:200], platform[:100], ATTEMPT_TTL))

    await db.run(tx)


async def recall(db: Database, state: str, browser: str | None) -> dict[str, Any]:
    """The attempt this state names, used up; refused unless this browser started it (a
    callback link handed to someone else would sign them in to the sender's account)."""
    async def tx(conn: Conn) -> dict[str, Any] | None:
        cur = await conn.execute(
            """DELETE FROM oidc_attempts WHERE state_hash = %s AND expires_at >= now()
               RETURNING browser_hash, nonce, verifier, device_name, platform""",
            (_hash(state),))
        return await cur.fetchone()

    row = await db.run(tx)
    if row is None or browser is None or not hmac.compare_digest(
            bytes(row["browser_hash"]), _hash(browser)):
        raise BadRequest("the state is not one this browser's sign-in was given",
                         code="oidc_state")
    return row


async def link(db: Database, who: Identity, device_name: str,
               platform: str) -> tuple[str, list[UUID]]:
    """The account of this identity (linked, created or claimed), a one-time code for the
    app, and the devices signed out by a claim (the caller closes their sockets)."""
    code = secrets.token_urlsafe(32)

    async def tx(conn: Conn) -> list[UUID]:
        await conn.execute("DELETE FROM oidc_handoffs WHERE expires_at < now()")
        user, ended = await _account(conn, who)
        await conn.execute(
            """INSERT INTO oidc_handoffs (code_hash, user_id, device_name, platform,
                                          expires_at)
               VALUES (%s, %s, %s, %s, now() + make_interval(secs => %s))""",
            (_hash(code), user, device_name, platform, HANDOFF_TTL))
        return ended

    ended = await db.run(tx)
    return code, ended


async def _claim(conn: Conn, user: UUID) -> list[UUID]:
    """The account's address is proven by the provider: verify it, and take away what
    whoever registered it may hold (module docstring). Returns the devices signed out."""
    # The row lock comes first: a password login waits on it and then sees the password
    # gone (auth.login), so no device of the old password slips in after the sign-out.
    await conn.execute(
        """UPDATE users SET email_verified_at = now(), password_hash = %s
           WHERE id = %s""", (NO_PASSWORD, user))
    await conn.execute("DELETE FROM account_tokens WHERE user_id = %s", (user,))
    await conn.execute("DELETE FROM oidc_handoffs WHERE user_id = %s", (user,))
    await conn.execute("DELETE FROM oidc_identities WHERE user_id = %s", (user,))
    return await sign_out(conn, user)


async def _account(conn: Conn, who: Identity) -> tuple[UUID, list[UUID]]:
    cur = await conn.execute(
        "SELECT user_id FROM oidc_identities WHERE issuer = %s AND subject = %s",
        (who.issuer, who.subject))
    row = await cur.fetchone()
    if row is not None:
        return UUID(str(row["user_id"])), []
    if who.email is None:
        raise BadRequest("the provider gave no email for this account",
                         code="oidc_email_missing")
    email = normalise_email(who.email)
    user, ended = uuid.uuid4(), []
    cur = await conn.execute(
        """INSERT INTO users (id, email, name, password_hash, email_verified_at)
           VALUES (%s, %s, %s, %s, CASE WHEN %s THEN now() END)
           ON CONFLICT (email) DO NOTHING""",
        (user, email, who.name, NO_PASSWORD, bool(who.email_verified)))
    if cur.rowcount == 0:
        if not who.email_verified:
            raise Conflict("an account with this email exists and the provider does not "
                           "say the email is verified", code="oidc_email_unverified")
        cur = await conn.execute(
            "SELECT id, email_verified_at IS NOT NULL AS verified FROM users WHERE email = %s",
            (email,))
        found = await cur.fetchone()
        assert found is not None  # the conflict was with this row
        user = UUID(str(found["id"]))
        if not found["verified"]:
            ended = await _claim(conn, user)
    # Two sign-ins of one identity at once: the second insert waits on the first's key
    # and fails its transaction, which the database layer retries into the branch above.
    await conn.execute(
        "INSERT INTO oidc_identities (issuer, subject, user_id) VALUES (%s, %s, %s)",
        (who.issuer, who.subject, user))
    return user, ended


async def redeem(conn: Conn, code: str) -> dict[str, Any] | None:
    """The user and device a handoff code names, used up (None: unknown, used or expired);
    run in the transaction that makes the device (`Auth.sign_in`)."""
    cur = await conn.execute(
        """DELETE FROM oidc_handoffs WHERE code_hash = %s RETURNING user_id, device_name,
                  platform, expires_at >= now() AS live""", (_hash(code),))
    row = await cur.fetchone()
    return row if row is not None and row["live"] else None
