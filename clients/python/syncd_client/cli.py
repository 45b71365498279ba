"""`syncd-client`: a small command line over `SyncClient`.

Every command opens the store given by `--store` (default: the user data
directory) and talks to `--server` only when it has to (login, register,
sync, watch); everything else works offline. Ids may be abbreviated to any
unique prefix.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Sequence
from pathlib import Path

import httpx
from platformdirs import user_data_dir

from syncd_client.client import DEFAULT_SERVER, SyncClient
from syncd_client.errors import SyncdClientError
from syncd_client.types import Json


def default_store() -> Path:
    return Path(user_data_dir("syncd-client")) / "store.db"


def _table(rows: list[list[str]], headers: list[str]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(line.rstrip() for line in lines)


def _resolve(client: SyncClient, prefix: str) -> str:
    ids = [n["id"] for n in client.notes(include_deleted=True) if n["id"].startswith(prefix)]
    if len(ids) != 1:
        raise SystemExit(f"{'no' if not ids else 'ambiguous'} note id {prefix!r}")
    return str(ids[0])


def _fields(args: argparse.Namespace) -> Json:
    fields: Json = {}
    if args.title is not None:
        fields["title"] = args.title
    if args.tags is not None:
        fields["tags"] = [t for t in args.tags.split(",") if t]
    if args.project is not None:
        fields["project_id"] = args.project or None
    if args.pinned is not None:
        fields["pinned"] = args.pinned == "yes"
    if args.body is not None:
        fields["body"] = args.body
    return fields


def cmd_register(client: SyncClient, args: argparse.Namespace) -> None:
    user = client.register(args.email, args.password or getpass.getpass(), args.name)
    print(f"registered {user['email']} ({user['id']})")


def cmd_login(client: SyncClient, args: argparse.Namespace) -> None:
    user = client.login(args.email, args.password or getpass.getpass(), args.device)
    print(f"logged in as {user['email']}, device {user['device_id']}")


def cmd_ls(client: SyncClient, args: argparse.Namespace) -> None:
    notes = client.notes(tag=args.tag, query=args.query, include_deleted=args.all)
    rows = [
        [
            n["id"][:8],
            ("*" if n["pinned"] else "") + ("x" if n["deleted"] else ""),
            n["title"][:40],
            ",".join(n["tags"]),
            str(n["word_count"]),
        ]
        for n in notes
    ]
    print(_table(rows, ["ID", "", "TITLE", "TAGS", "WORDS"]) if rows else "no notes")
    pending = client.pending()
    if pending:
        print(f"\n{pending} change(s) not synced yet")


def cmd_show(client: SyncClient, args: argparse.Namespace) -> None:
    note = client.note(_resolve(client, args.id))
    assert note is not None
    print(f"{note['title'] or '(untitled)'}{'  [deleted]' if note['deleted'] else ''}")
    print(
        f"id {note['id']}  tags {','.join(note['tags']) or '-'}  "
        f"project {note['project_id'] or '-'}  words {note['word_count']}"
    )
    print()
    print(note["body"])


def cmd_new(client: SyncClient, args: argparse.Namespace) -> None:
    print(client.create_note(**_fields(args)))


def cmd_edit(client: SyncClient, args: argparse.Namespace) -> None:
    client.update_note(_resolve(client, args.id), **_fields(args))


def cmd_rm(client: SyncClient, args: argparse.Namespace) -> None:
    note_id = _resolve(client, args.id)
    (client.restore_note if args.restore else client.delete_note)(note_id)


def cmd_sync(client: SyncClient, args: argparse.Namespace) -> None:
    result = client.bootstrap() if client.cursor == 0 else client.sync()
    print(f"pushed {result.pushed}, pulled {result.pulled}, cursor {client.cursor}")
    for r in client.rejections():
        print(f"rejected op {r.client_seq} ({r.kind} {r.entity} {r.id[:8]}): {r.code} {r.message}")


def cmd_watch(client: SyncClient, args: argparse.Namespace) -> None:
    def show(ids: list[str]) -> None:
        for id in ids:
            note = client.note(id)
            label = note["title"] if note else "(gone)"
            print(f"changed {id[:8]} {label}", flush=True)

    client.on_change(show)
    print(f"watching {client.server_url} from cursor {client.cursor} (Ctrl-C to stop)")
    try:
        client.live(background=False)
    except KeyboardInterrupt:
        pass


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="syncd-client", description=__doc__)
    p.add_argument("--store", type=Path, default=None, help="SQLite store file")
    p.add_argument("--server", default=None, help=f"server URL (default {DEFAULT_SERVER})")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("register", help="create an account")
    s.add_argument("email")
    s.add_argument("--password")
    s.add_argument("--name")
    s.set_defaults(func=cmd_register)

    s = sub.add_parser("login", help="log in as a new device")
    s.add_argument("email")
    s.add_argument("--password")
    s.add_argument("--device", default=None, help="device name")
    s.set_defaults(func=cmd_login)

    s = sub.add_parser("ls", help="list notes")
    s.add_argument("--tag")
    s.add_argument("--query", "-q")
    s.add_argument("--all", action="store_true", help="include deleted notes")
    s.set_defaults(func=cmd_ls)

    s = sub.add_parser("show", help="print a note")
    s.add_argument("id")
    s.set_defaults(func=cmd_show)

    for name, func, help in (("new", cmd_new, "create a note"), ("edit", cmd_edit, "edit a note")):
        s = sub.add_parser(name, help=help)
        if name == "edit":
            s.add_argument("id")
        s.add_argument("--title")
        s.add_argument("--body")
        s.add_argument("--tags", help="comma separated")
        s.add_argument("--project", help="project id ('' for none)")
        s.add_argument("--pinned", choices=["yes", "no"])
        s.set_defaults(func=func)

    s = sub.add_parser("rm", help="delete (or --restore) a note")
    s.add_argument("id")
    s.add_argument("--restore", action="store_true")
    s.set_defaults(func=cmd_rm)

    sub.add_parser("sync", help="push and pull once").set_defaults(func=cmd_sync)
    sub.add_parser("watch", help="stay live and print changes").set_defaults(func=cmd_watch)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    client = SyncClient.open(args.store or default_store(), args.server)
    try:
        args.func(client, args)
    except SyncdClientError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except httpx.TransportError as exc:
        print(f"error: cannot reach {client.server_url}: {exc}", file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
