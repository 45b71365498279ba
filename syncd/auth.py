"""Accounts, devices and tokens: argon2 password hashes, short-lived JWT access tokens,
opaque rotating refresh tokens with reuse detection, and device revocation.

An access token names a user and a device; every request also checks the device is not
revoked, so revoking a device stops its unexpired access tokens at once. That a device is
live is remembered for a moment (`device_check_ttl`, 2 s) and forgotten the moment it is
closed, on this node or, through the bus, on any other (`forget_device`): the moment only
bounds how long a revocation the bus did not carry (Redis down) takes to be seen.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any
from uuid import UUID

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from syncd.db import Conn, Database
from syncd.errors import BadRequest, Conflict, Forbidden, Unauthorized
from syncd.limits import MAX_PASSWORD, MIN_PASSWORD
from syncd.types import Principal

# OWASP's argon2id baseline (19 MiB, t=2, p=1): strong, and ~20 ms on one core.
_hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
# Verifying against this keeps an unknown email as slow as a wrong password.
_DUMMY_HASH = _hasher.hash("syncd-dummy-password")
DECODED_TOKENS = 10_000  # access tokens whose checked claims are kept
LIVE_DEVICES = 100_000  # devices whose liveness is remembered


def normalise_email(email: str) -> str:
    email = email.strip().lower()
    local, _, domain = email.partition("@")
    if not local or "." not in domain or len(email) > 320 or " " in email:
        raise BadRequest("email is not a valid address", {"field": "email"}, code="validation")
    return email


async def hash_password(password: str) -> str:
    """The argon2 hash of a new password (its length checked), computed off the loop."""
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise BadRequest(f"password must be {MIN_PASSWORD} to {MAX_PASSWORD} characters",
                         {"field": "password"}, code="validation")
    return await asyncio.to_thread(_hasher.hash, password)


def _token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class Auth:
    def __init__(self, db: Database, secret: str, access_ttl: int, refresh_ttl: int,
                 device_check_ttl: float = 0.0,
                 closed: Callable[[UUID, str], None] | None = None,
                 unverified_days: float | None = None) -> None:
        self.db = db
        self.secret = secret
        self.access_ttl = access_ttl
        self.refresh_ttl = refresh_ttl
        self._decoded: dict[str, tuple[Principal, float]] = {}  # token → (claims, expiry)
        self.device_check_ttl = device_check_ttl
        self._live: dict[UUID, float] = {}  # device → when it was last read live (monotonic)
        self._forgotten = 0  # devices forgotten so far: a read that overlapped one is not kept
        # Tells every node a device has ended (the hub: its sockets close, and each node's
        # Auth forgets it). Revocations by the API are announced by their handlers.
        self.closed = closed
        # How long an unverified account may log in (None: no limit; SYNCD_UNVERIFIED_DAYS).
        self.unverified_days = unverified_days

    # --- tokens ---------------------------------------------------------------------------

    def access_token(self, user: UUID, device: UUID) -> str:
        now = int(time.time())
        claims = {"sub": str(user), "dev": str(device), "iat": now,
                  "exp": now + self.access_ttl, "typ": "access"}
        return jwt.encode(claims, self.secret, algorithm="HS256")

    def decode(self, token: str) -> Principal:
        # A client sends the same token for minutes: its checked claims are remembered
        # (the signature cannot change; expiry is checked on every use).
        known = self._decoded.get(token)
        if known is not None and known[1] > time.time():
            return known[0]
        try:
            claims = jwt.decode(token, self.secret, algorithms=["HS256"],
                                options={"require": ["exp", "sub", "dev"]})
            if claims.get("typ") != "access":
                raise jwt.InvalidTokenError("not an access token")
            who = Principal(UUID(claims["sub"]), UUID(claims["dev"]))
        except jwt.ExpiredSignatureError:
            raise Unauthorized("the access token has expired", code="token_expired") from None
        except (jwt.InvalidTokenError, ValueError):
            raise Unauthorized("the access token is not valid", code="invalid_token") from None
        if len(self._decoded) >= DECODED_TOKENS:
            del self._decoded[next(iter(self._decoded))]  # the oldest
        self._decoded[token] = (who, float(claims["exp"]))
        return who

    async def authenticate(self, token: str | None) -> Principal:
        """Decode the token and check its device is still live."""
        if not token:
            raise Unauthorized("an access token is required")
        who = self.decode(token)
        seen = self._live.get(who.device_id)
        if seen is not None and time.monotonic() - seen < self.device_check_ttl:
            return who

        async def tx(conn: Conn) -> bool:
            cur = await conn.execute(
                "SELECT 1 FROM devices WHERE id = %s AND user_id = %s AND revoked_at IS NULL",
                (who.device_id, who.user_id))
            return await cur.fetchone() is not None

        forgotten, read_at = self._forgotten, time.monotonic()
        if not await self.db.run(tx, read_only=True):
            raise Unauthorized("this device has been revoked", code="device_revoked")
        # Kept only if no device was forgotten meanwhile: the read may predate that revoke.
        if self.device_check_ttl > 0 and forgotten == self._forgotten:
            if len(self._live) >= LIVE_DEVICES:
                self._live.clear()
            self._live[who.device_id] = read_at
        return who

    def forget_device(self, device: UUID) -> None:
        """The device was closed (here or on another node): check it again on next use."""
        self._forgotten += 1
        self._live.pop(device, None)

    async def _issue(self, conn: Conn, user: UUID, device: UUID) -> dict[str, Any]:
        refresh = secrets.token_urlsafe(32)
        await conn.execute(
            """INSERT INTO refresh_tokens (token_hash, device_id, expires_at)
               VALUES (%s, %s, now() + make_interval(secs => %s))""",
            (_token_hash(refresh), device, self.refresh_ttl))
        return {"access_token": self.access_token(user, device), "refresh_token": refresh,
                "expires_in": self.access_ttl}

    # --- accounts -------------------------------------------------------------------------

    async def register(self, email: str, password: str, name: str,
                       then: Callable[[Conn, UUID, str], Awaitable[None]] | None = None,
                       ) -> dict[str, Any]:
        """Create the account; `then(conn, user_id, email)` runs in its transaction (the
        verification mail)."""
        email = normalise_email(email)
        if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
            raise BadRequest(f"password must be {MIN_PASSWORD} to {MAX_PASSWORD} characters",
                             {"field": "password"}, code="validation")
        if len(name) > 200:
            raise BadRequest("name must be at most 200 characters", {"field": "name"},
                             code="validation")
        hashed = await asyncio.to_thread(_hasher.hash, password)
        user_id = uuid.uuid4()

        async def tx(conn: Conn) -> bool:
            cur = await conn.execute(
                """INSERT INTO users (id, email, name, password_hash) VALUES (%s, %s, %s, %s)
                   ON CONFLICT (email) DO NOTHING""", (user_id, email, name, hashed))
            if cur.rowcount == 1 and then is not None:
                await then(conn, user_id, email)
            return cur.rowcount == 1

        if not await self.db.run(tx):
            raise Conflict("an account with this email exists", code="email_taken")
        return {"id": user_id, "email": email, "name": name}

    async def login(self, email: str, password: str, device_name: str,
                    platform: str) -> dict[str, Any]:
        email = normalise_email(email)
        days = self.unverified_days
        grace = 86400 * (days if days is not None else 1e5)  # seconds unverified

        async def find(conn: Conn) -> dict[str, Any] | None:
            cur = await conn.execute(
                """SELECT id, email, name, password_hash, email_verified_at IS NOT NULL
                            OR created_at > now() - make_interval(secs => %s) AS may_login
                   FROM users WHERE email = %s""",
                (grace, email))
            return await cur.fetchone()

        user = await self.db.run(find, read_only=True)
        try:
            await asyncio.to_thread(_hasher.verify,
                                    user["password_hash"] if user else _DUMMY_HASH, password)
        except (VerificationError, InvalidHashError):
            user = None
        if user is None:
            raise Unauthorized("wrong email or password", code="invalid_credentials")
        if not user["may_login"]:
            raise Forbidden("verify your email address first (follow the link mailed to it)",
                            code="email_unverified")
        device = uuid.uuid4()

        async def tx(conn: Conn) -> dict[str, Any] | None:
            # The password checked above must still be the account's: a reset or a claim
            # by an OpenID sign-in that commits meanwhile would miss this new device. The
            # share lock waits for such a change and then reads it.
            cur = await conn.execute(
                "SELECT 1 FROM users WHERE id = %s AND password_hash = %s FOR SHARE",
                (user["id"], user["password_hash"]))
            if await cur.fetchone() is None:
                return None
            await conn.execute(
                "INSERT INTO devices (id, user_id, name, platform) VALUES (%s, %s, %s, %s)",
                (device, user["id"], device_name[:200], platform[:100]))
            return await self._issue(conn, user["id"], device)

        tokens = await self.db.run(tx)
        if tokens is None:
            raise Unauthorized("wrong email or password", code="invalid_credentials")
        return {"user": {k: user[k] for k in ("id", "email", "name")}, "device_id": device,
                **tokens}

    async def sign_in(self, proof: Callable[[Conn], Awaitable[dict[str, Any] | None]],
                      ) -> dict[str, Any] | None:
        """A new device and its tokens for an account whose owner proved who they are
        elsewhere (an OpenID provider): login's answer, without a password. `proof(conn)`
        spends that proof in this transaction and names `user_id`, `device_name` and
        `platform`, or None (no valid proof: nothing is made, None is returned). In one
        transaction, an account claimed meanwhile (syncd/signin.py) either voids the proof
        first or sees, and signs out, the device made here."""
        device = uuid.uuid4()

        async def tx(conn: Conn) -> dict[str, Any] | None:
            found = await proof(conn)
            if found is None:
                return None
            user_id = found["user_id"]
            cur = await conn.execute("SELECT id, email, name FROM users WHERE id = %s",
                                     (user_id,))
            user = await cur.fetchone()
            if user is None:
                return None
            await conn.execute(
                "INSERT INTO devices (id, user_id, name, platform) VALUES (%s, %s, %s, %s)",
                (device, user_id, found["device_name"][:200], found["platform"][:100]))
            return {"user": user, "device_id": device,
                    **await self._issue(conn, user_id, device)}

        return await self.db.run(tx)

    async def refresh(self, token: str) -> dict[str, Any]:
        reused: list[UUID] = []

        async def tx(conn: Conn) -> dict[str, Any] | str:
            reused.clear()
            cur = await conn.execute(
                """SELECT t.device_id, t.used_at, t.expires_at < now() AS expired, d.user_id,
                          d.revoked_at FROM refresh_tokens t JOIN devices d ON d.id = t.device_id
                   WHERE t.token_hash = %s FOR UPDATE OF t, d""", (_token_hash(token),))
            row = await cur.fetchone()
            if row is None or row["revoked_at"] is not None or row["expired"]:
                return "invalid"
            if row["used_at"] is not None:
                # A rotated token came back: someone holds a copy. End the device.
                await _revoke(conn, row["device_id"])
                reused.append(row["device_id"])
                return "reused"
            await conn.execute("UPDATE refresh_tokens SET used_at = now() WHERE token_hash = %s",
                               (_token_hash(token),))
            return await self._issue(conn, row["user_id"], row["device_id"])

        result = await self.db.run(tx)
        if result == "reused":
            if self.closed is not None:
                self.closed(reused[0], "refresh token reused")
            raise Unauthorized("refresh token reuse detected: the device is revoked",
                               code="token_reused")
        if isinstance(result, str):
            raise Unauthorized("the refresh token is not valid", code="invalid_token")
        return result

    async def me(self, who: Principal) -> dict[str, Any]:
        async def tx(conn: Conn) -> dict[str, Any] | None:
            cur = await conn.execute(
                """SELECT id, email, name, timezone, created_at,
                          email_verified_at IS NOT NULL AS email_verified
                   FROM users WHERE id = %s""",
                (who.user_id,))
            return await cur.fetchone()

        user = await self.db.run(tx, read_only=True)
        if user is None:
            raise Unauthorized("the account no longer exists")
        return {"user": user, "device_id": who.device_id}

    async def devices(self, who: Principal) -> list[dict[str, Any]]:
        async def tx(conn: Conn) -> list[dict[str, Any]]:
            cur = await conn.execute(
                """SELECT id, name, platform, acked, created_at, last_seen_at, last_ip,
                          user_agent, revoked_at
                   FROM devices WHERE user_id = %s ORDER BY created_at""", (who.user_id,))
            return [{**d, "current": d["id"] == who.device_id} for d in await cur.fetchall()]

        return await self.db.run(tx, read_only=True)

    async def revoke(self, who: Principal, device: UUID) -> bool:
        """Revoke one of the caller's devices. False when it is not theirs (or unknown)."""
        async def tx(conn: Conn) -> bool:
            cur = await conn.execute("SELECT 1 FROM devices WHERE id = %s AND user_id = %s",
                                     (device, who.user_id))
            if await cur.fetchone() is None:
                return False
            await _revoke(conn, device)
            return True

        return await self.db.run(tx)


async def _revoke(conn: Conn, device: UUID) -> None:
    await conn.execute(
        "UPDATE devices SET revoked_at = coalesce(revoked_at, now()) WHERE id = %s", (device,))
    await conn.execute("DELETE FROM refresh_tokens WHERE device_id = %s", (device,))
