"""The Node interop harness itself: stock y-websocket peers against pycrdt-websocket.

No syncd here. A reference y-websocket server (pycrdt-websocket under uvicorn, in a child
process: `python -m tests.test_node_harness TOKEN`) proves that collab_peer.mjs connects,
sends its token, syncs, and converges with a concurrent peer, so a failure in the syncd
collab tests points at syncd and not at the harness.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest

from tests.node_env import REPO, collab_peer_command, ensure_node_modules

TOKEN = "harness-token"


async def _serve(token: str) -> None:
    import uvicorn
    from pycrdt.websocket import ASGIServer, WebsocketServer, exception_logger

    def refuse(message: dict[str, Any], scope: dict[str, Any]) -> bool:
        # True refuses the handshake: only a peer that sent ?token=TOKEN gets in
        return parse_qs(scope["query_string"].decode()).get("token") != [token]

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    print(sock.getsockname()[1], flush=True)
    # exception_logger: a send racing a peer's disconnect otherwise takes the room down
    server = WebsocketServer(auto_clean_rooms=False, exception_handler=exception_logger)
    async with server as websocket_server:
        app = ASGIServer(websocket_server, on_connect=refuse)
        config = uvicorn.Config(app, log_level="warning", ws="websockets-sansio", lifespan="off")
        await uvicorn.Server(config).serve(sockets=[sock])


@pytest.fixture(scope="module")
def node_dir() -> Path:
    return ensure_node_modules()


@pytest.fixture(scope="module")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log = (tmp_path_factory.mktemp("yws") / "server.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.test_node_harness", TOKEN],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        yield f"ws://127.0.0.1:{port}/v1/collab"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()
        log.close()


def peer(node_dir: Path, url: str, room: str, *args: str) -> subprocess.Popen[str]:
    command = collab_peer_command(node_dir, "--url", url, "--room", room, *args)
    return subprocess.Popen(
        command, cwd=node_dir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def result(proc: subprocess.Popen[str]) -> tuple[int, dict[str, Any], str]:
    out, err = proc.communicate(timeout=30)
    return proc.returncode, json.loads(out), err


def test_two_concurrent_peers_converge(node_dir: Path, server_url: str) -> None:
    both = ["--wait-for", "alpha", "--wait-for", "omega", "--timeout-ms", "10000"]
    first = peer(node_dir, server_url, "note-1", "--token", TOKEN, "--insert", "alpha ",
                 "--at", "0", *both)  # fmt: skip
    second = peer(node_dir, server_url, "note-1", "--token", TOKEN, "--insert", " omega",
                  "--at", "end", *both)  # fmt: skip
    (code1, out1, err1), (code2, out2, err2) = result(first), result(second)
    assert (code1, code2) == (0, 0), (err1, err2)
    assert out1["synced"] and out2["synced"]
    assert out1["text"] == out2["text"]
    assert sorted(out1["text"].split()) == ["alpha", "omega"]

    # the room keeps the document: a late reader sees both insertions after syncing
    late = peer(node_dir, server_url, "note-1", "--token", TOKEN, *both)
    code, out, err = result(late)
    assert code == 0, err
    assert out == {"text": out1["text"], "synced": True}


def test_insert_at_index(node_dir: Path, server_url: str) -> None:
    setup = peer(node_dir, server_url, "note-2", "--token", TOKEN, "--insert", "ac",
                 "--wait-for", "ac")  # fmt: skip
    assert result(setup)[0] == 0
    middle = peer(node_dir, server_url, "note-2", "--token", TOKEN, "--insert", "b",
                  "--at", "1", "--wait-for", "abc")  # fmt: skip
    code, out, err = result(middle)
    assert code == 0, err
    assert out == {"text": "abc", "synced": True}


def test_timeout_when_refused(node_dir: Path, server_url: str) -> None:
    refused = peer(node_dir, server_url, "note-3", "--token", "wrong", "--insert", "x",
                   "--wait-for", "x", "--timeout-ms", "1500")  # fmt: skip
    code, out, _ = result(refused)
    assert code == 1
    assert out == {"text": "", "synced": False}


if __name__ == "__main__":
    import anyio

    anyio.run(_serve, sys.argv[1])
