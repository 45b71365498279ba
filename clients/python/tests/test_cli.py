"""The `syncd-client` commands that work offline, on a real store file."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import offline_client

from syncd_client.cli import main


def test_new_edit_ls_show_rm(store_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    offline_client(store_path).close()  # a store with a device, as after `login`
    run = ["--store", str(store_path), "--server", "http://127.0.0.1:9"]
    assert main([*run, "new", "--title", "Groceries", "--tags", "home,food"]) == 0
    note_id = capsys.readouterr().out.strip()
    assert main([*run, "edit", note_id[:8], "--body", "milk and eggs"]) == 0
    assert main([*run, "ls"]) == 0
    out = capsys.readouterr().out
    assert "Groceries" in out and "home,food" in out and "not synced" in out
    assert main([*run, "show", note_id[:6]]) == 0
    assert "milk and eggs" in capsys.readouterr().out
    assert main([*run, "rm", note_id]) == 0
    assert main([*run, "ls"]) == 0
    assert "no notes" in capsys.readouterr().out


def test_sync_without_a_server_fails_cleanly(
    store_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    offline_client(store_path).close()
    run = ["--store", str(store_path), "--server", "http://127.0.0.1:9"]
    assert main([*run, "new", "--title", "kept"]) == 0
    assert main([*run, "sync"]) == 1
    assert "cannot reach" in capsys.readouterr().err
    assert main([*run, "ls"]) == 0
    assert "kept" in capsys.readouterr().out  # still queued locally
