"""Helpers for tests that run the SDK against a real `syncd serve` (tests/fix_services.py)."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

from syncd_client import SyncClient
from syncd_client.hlc import wall_ms

PASSWORD = "correct horse battery staple"


def new_email() -> str:
    return f"e2e{secrets.token_hex(6)}@example.com"


def device(path: Path, base_url: str, email: str, name: str = "dev",
           register: bool = False, now: Callable[[], int] = wall_ms) -> SyncClient:
    """A store at `path` logged in as a new device of `email` (registered first if asked);
    `now` is its wall clock."""
    c = SyncClient.open(path, base_url, now=now)
    if register:
        c.register(email, PASSWORD, name)
    c.login(email, PASSWORD, name, "test")
    return c


def local_notes(c: SyncClient) -> dict[str, dict[str, Any]]:
    """id → the converging state of every local note (fields, deleted, body)."""
    keys = ("title", "tags", "pinned", "favorite", "project_id", "deleted", "body")
    return {n["id"]: {k: n[k] for k in keys} for n in c.notes(include_deleted=True)}


def snapshot_notes(c: SyncClient) -> dict[str, dict[str, Any]]:
    keys = ("title", "tags", "pinned", "favorite", "project_id", "deleted", "body")
    snap = c.api.snapshot()
    return {n["id"]: {k: n.get(k) for k in keys} for n in snap.notes}


def log_counts(db: psycopg.Connection[Any], device_id: str) -> dict[int, int]:
    """client_seq → how many distinct ops of this device the log holds (over all users' logs,
    an op shared with members has one op_id)."""
    rows = db.execute(
        "SELECT client_seq, count(DISTINCT op_id) FROM events "
        "WHERE device_id = %s AND client_seq IS NOT NULL GROUP BY client_seq",
        (device_id,),
    ).fetchall()
    return {int(s): int(n) for s, n in rows}
