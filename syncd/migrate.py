"""The schema: apply schema.sql, then fill the derived tables it has just created from the log.

Every statement in schema.sql is idempotent, so `migrate` runs at every start; one
migrator at a time holds an advisory lock.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import psycopg

from syncd.rebuild import rebuild_from_log, write_words

log = logging.getLogger("syncd.migrate")
SCHEMA = Path(__file__).resolve().parent.parent / "schema.sql"


def migrate_sync(url: str) -> None:
    """Apply schema.sql (every statement in it is idempotent), then fill the derived tables
    it has just created from the log."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(7215)")  # one migrator at a time
        try:
            row = conn.execute("SELECT to_regclass('words_written') IS NULL").fetchone()
            conn.execute(SCHEMA.read_text().encode())
            if row and row[0]:
                _fill_words(conn)
        finally:
            conn.execute("SELECT pg_advisory_unlock(7215)")


def _fill_words(conn: psycopg.Connection[Any]) -> None:
    """words_written, new in a database that has a log: what its text ops wrote."""
    if conn.execute("SELECT 1 FROM events WHERE kind = 'text' LIMIT 1").fetchone() is None:
        return
    log.info("filling words_written from the log")
    with conn.transaction():
        write_words(conn, rebuild_from_log(conn))
