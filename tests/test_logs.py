"""No token reaches the server's output: a real server logging at DEBUG (uvicorn and the
websockets library then write every handshake's request line and headers) serves sync and
collab sockets that carry `?token=`, and its whole output is searched for them."""

from __future__ import annotations

import io
import logging
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.sync.client import connect

from syncd.logs import JsonFormatter, Redact, redact_uvicorn
from tests.fix_server import ServerProcess
from tests.helpers import Api, new_id
from tests.test_collab import YPeer, make_note
from tests.ws_client import close_code, hello, open_socket, recv_type, send


@pytest.fixture(scope="module")
def talkative(pg_url: str, tmp_root: Path) -> Iterator[ServerProcess]:
    proc = ServerProcess(pg_url, tmp_root / "talkative", env={"SYNCD_LOG_LEVEL": "debug"})
    proc.start()
    yield proc
    proc.stop()


def test_no_token_in_the_output_after_sync_and_collab_sockets(talkative: ServerProcess) -> None:
    forged = f"forged{secrets.token_hex(16)}"
    with Api(talkative.base_url) as api:
        owner, stranger = api.user("owner"), api.user("stranger")
        note = make_note(owner, "hello")
        with open_socket(talkative.ws_url, owner) as ws:
            hello(ws, 0)
            op = owner.set("note", new_id(), title="live")
            send(ws, {"type": "push", "ops": [op]})
            assert recv_type(ws, "ack")["acked"] == op["client_seq"]
        # The socket reads only ?token=; a header sent too is logged with the request's.
        with connect(f"{talkative.ws_url}/v1/sync/ws?token={owner.token}",
                     additional_headers=owner.headers, open_timeout=10) as ws:
            hello(ws, 0)
        with open_socket(talkative.ws_url, owner, token=forged) as ws:
            assert close_code(ws) == 4401
        with YPeer(talkative, note, owner.token) as peer:
            assert peer.sync().wait_text(lambda t: t == "hello") == "hello"
        with YPeer(talkative, note, stranger.token) as peer:
            assert peer.wait_closed() == 4403
        with YPeer(talkative, note, forged) as peer:
            assert peer.wait_closed() == 4401
    talkative.stop()  # every line written out
    out = talkative.log_path.read_text(errors="replace")
    # The lines that would carry them were written, redacted:
    assert "/v1/sync/ws?token=[redacted]" in out
    assert f"/v1/collab/{note}?token=[redacted]" in out
    assert "authorization: [redacted]" in out.lower()
    for secret in (owner.token, stranger.token, forged, owner.refresh_token):
        assert secret not in out
    assert "eyJ" not in out  # no JSON Web Token, whole or in part


def test_uvicorn_access_lines_and_tracebacks_are_redacted() -> None:
    """A server run with uvicorn's access log (not `syncd serve`, which turns it off) logs
    every request line: the OpenID callback's `code` and `state` are masked there, and in
    a traceback whose message holds a URL."""
    redact_uvicorn()
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    access = logging.getLogger("uvicorn.access")
    access.addHandler(handler)
    errors = logging.getLogger("syncd.test_logs")
    errors.addHandler(handler)
    handler.addFilter(Redact())
    access.setLevel(logging.INFO)
    try:
        access.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET",
                    "/v1/auth/oidc/callback?code=c0de5ecret&state=5tate5ecret", "1.1", 302)
        try:
            raise RuntimeError("could not reach wss://example.test/v1/sync/ws?token=t0ken5ecret")
        except RuntimeError:
            errors.exception("socket failed")
    finally:
        access.removeHandler(handler)
        errors.removeHandler(handler)
    text = out.getvalue()
    assert "/v1/auth/oidc/callback?code=[redacted]&state=[redacted]" in text
    assert "?token=[redacted]" in text and "RuntimeError" in text
    assert not any(s in text for s in ("c0de5ecret", "5tate5ecret", "t0ken5ecret"))
