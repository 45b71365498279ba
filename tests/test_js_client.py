"""The JavaScript SDK (clients/js): its Node suites and its browser tests, run against a
real syncd server started by the fixtures.

Each test runs one Node test file or browser scenario and asserts that it passed; their
own output (Node's test runner, the browser driver) is shown when one fails.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.fix_server import ServerProcess
from tests.node_env import CHROMIUM_HELP, chromium_binary, ensure_js_client, node_binary


@pytest.fixture(scope="session")
def js_dir() -> Path:
    return ensure_js_client()


def run_node(js_dir: Path, args: list[str], env: dict[str, str] | None = None,
             timeout: int = 600) -> None:
    proc = subprocess.run([node_binary(), *args], cwd=js_dir, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=timeout)
    output = f"{proc.stdout[-8000:]}\n{proc.stderr[-4000:]}"
    assert proc.returncode == 0, f"{' '.join(args)} failed:\n{output}"


def test_unit(js_dir: Path) -> None:
    run_node(js_dir, ["--test", "test/unit/"])


def test_store_suite_sqlite(js_dir: Path) -> None:
    run_node(js_dir, ["--test", "test/node/store.test.mjs"])


def test_node_client_against_server(js_dir: Path, server: ServerProcess) -> None:
    run_node(js_dir, ["--test", "--test-concurrency=1", "test/node/client.test.mjs"],
             env={"SYNCD_URL": server.base_url})


def test_browser(js_dir: Path, server: ServerProcess) -> None:
    chromium = chromium_binary()
    if chromium is None:
        pytest.fail(CHROMIUM_HELP)
    run_node(js_dir, ["--test", "--test-concurrency=1", "test/browser/"],
             env={"SYNCD_URL": server.base_url, "CHROMIUM": chromium}, timeout=900)
