"""`syncd user`: an operator's account commands, straight against the database (no server
needed): set a password (an imported account's first one), mark an email verified, list a
user's devices, revoke one. A revoked device's requests fail at once; its open sockets on
running servers close at their next check of the device (ws_sync revalidates it)."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from collections.abc import Awaitable, Callable
from uuid import UUID

from syncd.accounts import Accounts
from syncd.config import Settings
from syncd.db import Conn, Database
from syncd.errors import SyncdError
from syncd.mail import Outbox
from syncd.migrate import migrate_sync


def _password(args: argparse.Namespace) -> str:
    """The new password: typed twice at a terminal, else the first line of stdin."""
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("new password: ")
    if getpass.getpass("again: ") != first:
        raise SystemExit("syncd: the passwords differ")
    return first


async def _with_accounts(url: str, settings: Settings,
                         fn: Callable[[Accounts], Awaitable[int]]) -> int:
    db = Database(url, 1, 2)
    await db.open()
    try:
        return await fn(Accounts(db, settings, Outbox(db, settings)))
    except SyncdError as e:
        print(f"syncd: {e.message}", file=sys.stderr)
        return 1
    finally:
        await db.close()


async def _set_password(accounts: Accounts, args: argparse.Namespace, password: str) -> int:
    ended = await accounts.set_password(args.email, password, args.keep_devices)
    print(f"syncd: password set for {args.email}; {len(ended)} device(s) signed out")
    return 0


async def _verify(accounts: Accounts, args: argparse.Namespace) -> int:
    await accounts.mark_verified(args.email)
    print(f"syncd: {args.email} is verified")
    return 0


async def _devices(accounts: Accounts, args: argparse.Namespace) -> int:
    user = await accounts.find(args.email)

    async def tx(conn: Conn) -> list[dict[str, object]]:
        cur = await conn.execute(
            """SELECT id, name, platform, last_seen_at, last_ip, user_agent, revoked_at
               FROM devices WHERE user_id = %s ORDER BY created_at""", (user["id"],))
        return await cur.fetchall()

    print("id\tname\tplatform\tlast seen\tip\tuser agent\trevoked")
    for d in await accounts.db.run(tx, read_only=True):
        seen = d["last_seen_at"]
        revoked = d["revoked_at"]
        print("\t".join(str(v) for v in (
            d["id"], d["name"], d["platform"], f"{seen:%Y-%m-%d %H:%M:%S%z}" if seen else "",
            d["last_ip"] or "", d["user_agent"] or "",
            f"{revoked:%Y-%m-%d %H:%M:%S%z}" if revoked else "")))
    return 0


async def _revoke(accounts: Accounts, args: argparse.Namespace) -> int:
    try:
        device = UUID(args.device_id)
    except ValueError:
        print("syncd: not a device id", file=sys.stderr)
        return 1

    async def tx(conn: Conn) -> bool:
        cur = await conn.execute(
            """UPDATE devices SET revoked_at = coalesce(revoked_at, now()) WHERE id = %s
               RETURNING id""", (device,))
        found = await cur.fetchone() is not None
        await conn.execute("DELETE FROM refresh_tokens WHERE device_id = %s", (device,))
        return found

    if not await accounts.db.run(tx):
        print(f"syncd: no device {device}", file=sys.stderr)
        return 1
    print(f"syncd: device {device} revoked")
    return 0


def run(args: argparse.Namespace, settings: Settings, url: str) -> int:
    migrate_sync(url)
    action = args.action
    if action == "set-password":
        password = _password(args)  # read before the event loop: input blocks
        return asyncio.run(_with_accounts(url, settings,
                                          lambda a: _set_password(a, args, password)))
    fns = {"verify": _verify, "devices": _devices, "revoke": _revoke}
    return asyncio.run(_with_accounts(url, settings, lambda a: fns[action](a, args)))


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    user = sub.add_parser("user", help="account commands for operators")
    user.add_argument("--data-dir", help="where the embedded database lives (SYNCD_DATA_DIR)")
    actions = user.add_subparsers(dest="action", required=True)
    p = actions.add_parser("set-password", help="set a password (read from stdin when piped)")
    p.add_argument("email")
    p.add_argument("--keep-devices", action="store_true",
                   help="leave the account's devices signed in")
    actions.add_parser("verify", help="mark the account's email verified").add_argument("email")
    actions.add_parser("devices", help="list the account's devices").add_argument("email")
    actions.add_parser("revoke", help="revoke a device").add_argument("device_id")
