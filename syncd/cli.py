"""The `syncd` command: serve, migrate, rebuild/verify the projection, export/import a user,
and the operator's `syncd user` commands."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

from syncd.config import Settings


def _settings(args: argparse.Namespace) -> Settings:
    settings = Settings()
    if getattr(args, "host", None):
        settings.host = args.host
    if getattr(args, "port", None):
        settings.port = args.port
    if getattr(args, "data_dir", None):
        settings.data_dir = Path(args.data_dir)
    return settings


def _database_url(settings: Settings) -> tuple[str, object | None]:
    """DATABASE_URL, or an embedded PostgreSQL started in the data directory."""
    if settings.database_url:
        return settings.database_url, None
    from syncd.embedded import start_postgres

    url, handle = start_postgres(settings.data_dir)
    return url, handle


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    from syncd.app import create_app
    from syncd.conns import protocols
    from syncd.logs import setup_logging

    settings = _settings(args)
    setup_logging(settings.log_level)
    url, handle = _database_url(settings)
    settings.database_url = url
    where = "embedded PostgreSQL" if handle else "PostgreSQL from DATABASE_URL"
    print(f"syncd: data in {settings.data_dir} ({where})", flush=True)
    print(f"syncd: fan-out {'through Redis' if settings.redis_url else 'in process'}", flush=True)
    print(f"syncd: listening on http://{settings.host}:{settings.port}", flush=True)
    # uvicorn shuts down gracefully on SIGTERM, then raises the signal again with the
    # handler it found. With the default one that kills the process before its atexit
    # handlers run, and the embedded PostgreSQL (stopped by one) was left running.
    signal.signal(signal.SIGTERM, _exit_cleanly)
    app = create_app(settings)
    http, ws = protocols(app.state.connections)  # deadlines and caps (syncd/conns.py)
    uvicorn.run(app, host=settings.host, port=settings.port, http=http, ws=ws,
                timeout_keep_alive=settings.keep_alive,
                log_level=settings.log_level, ws_max_size=16 * 1024 * 1024,
                ws_per_message_deflate=settings.ws_compression,
                timeout_graceful_shutdown=5, lifespan="on", log_config=None,
                access_log=False)  # syncd.access logs each request as JSON
    return 0


def _exit_cleanly(signum: int, frame: object) -> None:
    raise SystemExit(0)


def migrate(args: argparse.Namespace) -> int:
    from syncd.migrate import migrate_sync

    settings = _settings(args)
    url, _handle = _database_url(settings)
    migrate_sync(url)
    print("syncd: schema is up to date")
    return 0


def rebuild(args: argparse.Namespace) -> int:
    import psycopg
    from rich.progress import Progress

    from syncd.migrate import migrate_sync
    from syncd.rebuild import count_ops, differences, rebuild_from_log, write_projection

    settings = _settings(args)
    url, _handle = _database_url(settings)
    migrate_sync(url)
    with psycopg.connect(url) as conn:
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        total = count_ops(conn)
        with Progress(transient=not sys.stderr.isatty()) as progress:
            task = progress.add_task("replaying the log", total=total)
            rebuilt = rebuild_from_log(conn, lambda: progress.advance(task))
        entities = len(rebuilt.entities) + len(rebuilt.settings)
        print(f"replayed {rebuilt.ops} ops into {entities} entities")
        if args.verify:
            diffs = differences(conn, rebuilt)
            for line in diffs[:200]:
                print(line)
            if diffs:
                print(f"{len(diffs)} difference(s) between the projection and the log")
                return 1
            print("the projection matches the log")
            return 0
        write_projection(conn, rebuilt)
        conn.commit()
        print("projection rebuilt from the log")
    return 0


def export(args: argparse.Namespace) -> int:
    from syncd.transfer import export_to_file

    settings = _settings(args)
    url, _handle = _database_url(settings)
    return export_to_file(url, args.user, args.out)


def import_(args: argparse.Namespace) -> int:
    from syncd.transfer import import_from_file

    settings = _settings(args)
    url, _handle = _database_url(settings)
    return import_from_file(url, args.file, args.password)


def user(args: argparse.Namespace) -> int:
    from syncd.operators import run

    settings = _settings(args)
    url, _handle = _database_url(settings)
    return run(args, settings, url)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="syncd", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, fn, help_ in (
        ("serve", serve, "run the server"),
        ("migrate", migrate, "apply schema.sql (idempotent)"),
        ("rebuild", rebuild, "recompute notes and projects from the log"),
        ("export", export, "write a user's data as one JSON document"),
        ("import", import_, "recreate a user from an export (into a server without them)"),
    ):
        p = sub.add_parser(name, help=help_)
        p.set_defaults(fn=fn)
        p.add_argument("--data-dir", help="where the embedded database and secret live "
                       "(SYNCD_DATA_DIR)")
        if name == "serve":
            p.add_argument("--host", help="interface to bind (SYNCD_HOST, 127.0.0.1)")
            p.add_argument("--port", type=int, help="port (SYNCD_PORT, 8000)")
        if name == "rebuild":
            p.add_argument("--verify", action="store_true",
                           help="compare only; exit 1 when the projection differs from the log")
        if name == "export":
            p.add_argument("--user", required=True, help="the account's email")
            p.add_argument("--out", help="file to write (default: stdout)")
        if name == "import":
            p.add_argument("file", help="an export document (- for stdin)")
            p.add_argument("--password", help="the imported account's password (default: "
                           "none, it cannot log in until one is set with `syncd user "
                           "set-password` or a reset by mail)")
    from syncd.operators import add_parser

    add_parser(sub)
    sub.choices["user"].set_defaults(fn=user)
    args = parser.parse_args(argv)
    try:
        return int(args.fn(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
