"""The JavaScript SDK (clients/js): its Node suites and its browser tests, run against a
real syncd server started by the fixtures.

Each test runs one Node test file or browser scenario and asserts that it passed; their
own output (Node's test runner, the browser driver) is shown when one fails.
"""

from __future__ import annotations

import json
import os
import random
import secrets
import subprocess
from pathlib import Path
from typing import Any

import pytest
from syncd_client import SyncClient

from tests.fix_server import ServerProcess
from tests.helpers import PASSWORD
from tests.node_env import (
    CHROMIUM_HELP,
    chromium_binary,
    ensure_js_client,
    ensure_webapp,
    node_binary,
)


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


def test_node_settings_and_meta_against_server(js_dir: Path, server: ServerProcess) -> None:
    run_node(js_dir, ["--test", "--test-concurrency=1", "test/node/settings.test.mjs"],
             env={"SYNCD_URL": server.base_url})


def test_browser(js_dir: Path, server: ServerProcess) -> None:
    chromium = chromium_binary()
    if chromium is None:
        pytest.fail(CHROMIUM_HELP)
    run_node(js_dir, ["--test", "--test-concurrency=1", "test/browser/"],
             env={"SYNCD_URL": server.base_url, "CHROMIUM": chromium}, timeout=900)


def test_webapp(js_dir: Path, server: ServerProcess, tmp_path: Path) -> None:
    """The notes web app at /app/ (test/app/webapp.test.mjs): sign up, write, edit offline,
    reconnect, read on a second device, and take a screenshot. The README's picture is
    refreshed with `SYNCD_SCREENSHOT=docs/webapp.png make test`."""
    chromium = chromium_binary()
    if chromium is None:
        pytest.fail(CHROMIUM_HELP)
    assert (ensure_webapp() / "index.html").is_file()
    screenshot = Path(os.environ.get("SYNCD_SCREENSHOT") or tmp_path / "webapp.png").resolve()
    screenshot.unlink(missing_ok=True)
    run_node(js_dir, ["--test", "test/app/"],
             env={"SYNCD_URL": server.base_url, "CHROMIUM": chromium,
                  "SCREENSHOT": str(screenshot)}, timeout=900)
    assert screenshot.read_bytes().startswith(b"\x89PNG"), "the test wrote no screenshot"


class JsDevices:
    """The Node and browser devices of clients/js/test/node/devices.mjs, one call a line."""

    def __init__(self, js_dir: Path, server: ServerProcess, chromium: str, email: str) -> None:
        self.proc = subprocess.Popen(
            [node_binary(), "test/node/devices.mjs", email, PASSWORD], cwd=js_dir, text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            env={**os.environ, "SYNCD_URL": server.base_url, "CHROMIUM": chromium})
        assert self._read() == {"ready": True}

    def _read(self) -> Any:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line, "the device driver exited"
        return json.loads(line)

    def call(self, device: str, method: str, *args: Any) -> Any:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"device": device, "method": method,
                                          "args": list(args)}) + "\n")
        self.proc.stdin.flush()
        answer = self._read()
        assert "error" not in answer, f"{device}.{method}{args}: {answer['error']}"
        return answer["ok"]

    def close(self) -> None:
        self.proc.communicate(timeout=60)  # closes stdin: the driver ends, and its pipes


KEYS = ("title", "tags", "pinned", "deleted", "body")


def test_three_sdks_edit_concurrently_and_converge(js_dir: Path, server: ServerProcess,
                                                   tmp_path: Path) -> None:
    """A Python SDK device, a Node SQLite device and a browser device of one user edit
    the same notes offline, lose push responses, reconnect, and end equal to the server's
    projection. The seed is printed; SYNCD_TEST_SEED replays one."""
    chromium = chromium_binary()
    if chromium is None:
        pytest.fail(CHROMIUM_HELP)
    seed = int(os.environ.get("SYNCD_TEST_SEED", secrets.randbits(32)))
    print(f"seed {seed}")
    rnd = random.Random(seed)
    email = f"mix{secrets.token_hex(6)}@example.com"
    py = SyncClient.open(tmp_path / "py.db", server.base_url)
    py.register(email, PASSWORD)
    py.login(email, PASSWORD, "python device")
    js = JsDevices(js_dir, server, chromium, email)
    try:
        def notes(device: str) -> dict[str, dict[str, Any]]:
            listed = (py.notes(include_deleted=True) if device == "py"
                      else js.call(device, "notes", {"deleted": None}))
            return {n["id"]: n for n in listed}

        def act(device: str, step: int) -> None:
            known = notes(device)
            r = rnd.random()
            if not known or r < 0.15:
                title = f"{device} note {step}"
                if device == "py":
                    py.create_note(title=title)
                else:
                    js.call(device, "createNote", {"title": title})
                return
            nid = rnd.choice(sorted(known))
            body = known[nid]["body"]
            if r < 0.45:
                at, text = rnd.choice([0, len(body)]), f"{device}{step} "
                if device == "py":
                    py.insert_text(nid, at, text)
                else:
                    js.call(device, "insertText", nid, at, text)
                return
            if r < 0.75:
                fields: dict[str, Any] = rnd.choice([{"title": f"{device} title {step}"},
                                     {"tags": [f"t{step % 3}"]}, {"pinned": step % 2 == 0}])
                if device == "py":
                    py.update_note(nid, **fields)
                else:
                    js.call(device, "updateNote", nid, fields)
                return
            if r < 0.85:
                kind = "delete" if rnd.random() < 0.5 else "restore"
                if device == "py":
                    (py.delete_note if kind == "delete" else py.restore_note)(nid)
                else:
                    js.call(device, f"{kind}Note", nid)
                return
            if r < 0.93:  # a push whose response is lost: the next sync sees duplicates
                if device == "py":
                    ops = py.outbox.next_batch()
                    if ops:
                        py.api.push(ops)
                else:
                    js.call(device, "lostPush")
                return
            sync(device)  # back online for a moment

        def sync(device: str) -> None:
            if device == "py":
                py.sync()
            else:
                js.call(device, "sync")

        devices = ["py", "node", "browser"]
        for step in range(80):
            act(rnd.choice(devices), step)
        for _ in range(2):  # everyone pushes, then everyone pulls what the others pushed
            for device in devices:
                sync(device)
        server_notes = {n["id"]: n for n in py.api.snapshot().notes}
        want = {nid: [n[k] for k in KEYS] for nid, n in server_notes.items()}
        assert want, "the run made no notes"
        for device in devices:
            got = {nid: [n[k] for k in KEYS] for nid, n in notes(device).items()}
            assert got == want, f"{device} differs from the projection (seed {seed})"
    finally:
        js.close()
        py.close()
