"""Fixtures: a SyncClient on a temporary store, logged in as a made-up device.

Nothing here talks to a server: these tests cover what a device does on its
own. End-to-end tests against a real syncd point `SyncClient.open(path,
"http://127.0.0.1:<port>")` at a running server instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from syncd_client import SyncClient
from syncd_client.store import Store
from syncd_client.types import Json

DEVICE = "0f000000-0000-4000-8000-00000000000d"
OTHER = "0f000000-0000-4000-8000-00000000000e"
USER = "0f000000-0000-4000-8000-0000000000aa"
UNUSED_SERVER = "http://127.0.0.1:9"


def note_of(client: SyncClient, id: str) -> Json:
    """The note, which the test expects the client to hold."""
    note = client.note(id)
    assert note is not None, f"no note {id}"
    return note


def offline_client(path: Path) -> SyncClient:
    store = Store(path)
    if store.get("device_id") is None:
        store.set("device_id", DEVICE)
        store.set("user_id", USER)
    store.close()
    return SyncClient.open(path, UNUSED_SERVER)


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "device.db"


@pytest.fixture
def client(store_path: Path) -> Iterator[SyncClient]:
    c = offline_client(store_path)
    yield c
    c.close()

