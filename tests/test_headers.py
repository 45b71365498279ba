"""Security headers on every response (JSON, the /docs page, errors from each layer), HSTS
only when configured, and X-RateLimit-* headers counting down on rate-limited routes."""

from __future__ import annotations

import base64
import hashlib
import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from syncd.app import App
from syncd.headers import DEFAULT_CSP
from tests.fix_server import ServerProcess, free_port
from tests.helpers import PASSWORD, Api

HSTS = 31536000
RATE_USER = 5
RATE_AUTH = 50


@pytest.fixture(scope="module")
def guarded(pg_url: str, tmp_root: Path) -> Iterator[ServerProcess]:
    """HSTS on and rate limits on, in one window that outlasts the tests (counts can then be
    checked one by one, whenever the tests run)."""
    proc = ServerProcess(pg_url, tmp_root / "guarded", env={
        "SYNCD_HSTS": str(HSTS), "SYNCD_RATE_USER": str(RATE_USER),
        "SYNCD_RATE_AUTH": str(RATE_AUTH), "SYNCD_RATE_WINDOW": str(10**9),
        "SYNCD_HEADER_TIMEOUT": "1"})
    proc.start()
    yield proc
    proc.stop()


def raw_exchange(port: int, request: bytes) -> tuple[int, dict[str, str]]:
    """Send raw bytes, read until the server closes: the status and headers it answered."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(request)
        raw = b""
        while chunk := sock.recv(65536):
            raw += chunk
    lines = raw.split(b"\r\n\r\n", 1)[0].decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), {k.lower(): v for k, v in headers.items()}


def assert_secured(headers: httpx.Headers | dict[str, str], csp: str = DEFAULT_CSP) -> None:
    headers = httpx.Headers(headers)
    assert headers.get("x-content-type-options") == "nosniff"
    assert headers.get("referrer-policy") == "no-referrer"
    assert headers.get_list("content-security-policy") == [csp]


def test_json_and_error_responses_carry_the_headers(guarded: ServerProcess) -> None:
    with Api(guarded.base_url) as api:
        dev = api.user()
        answers = {
            "json": api.get("/v1/auth/me", headers=dev.headers),
            "openapi": api.get("/openapi.json"),
            "unauthorized": api.get("/v1/auth/me"),
            "no route": api.get("/v1/nowhere"),
            "bad json": api.post("/v1/auth/login", content=b"{nope",
                                 headers={"content-type": "application/json"}),
        }
    # refused by the request middleware before any route, from its declared length
    status, head = raw_exchange(guarded.port, b"POST /v1/sync/push HTTP/1.1\r\nHost: x\r\n"
                                b"Content-Length: 1073741824\r\n\r\n")
    assert status == 413
    assert_secured(head)
    assert head["strict-transport-security"] == f"max-age={HSTS}"
    expected = {"json": 200, "openapi": 200, "unauthorized": 401, "no route": 404,
                "bad json": 400}
    for name, r in answers.items():
        assert r.status_code == expected[name], (name, r.text)
        assert_secured(r.headers)
        assert r.headers["strict-transport-security"] == f"max-age={HSTS}"


def test_docs_page_policy_allows_its_stylesheet_and_nothing_else(guarded: ServerProcess) -> None:
    r = httpx.get(f"{guarded.base_url}/docs")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    (csp,) = r.headers.get_list("content-security-policy")
    assert_secured(r.headers, csp)
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["default-src"] == "'none'"
    assert directives["frame-ancestors"] == "'none'"
    assert "unsafe-inline" not in csp and "script-src" not in directives
    # The page's only resources: inline <style> blocks, each allowed by its hash.
    styles = re.findall(r"<style>(.*?)</style>", r.text, re.S)
    assert styles and not re.search(r"<script|<img|<link|<iframe|style=", r.text, re.I)
    allowed = set(directives["style-src"].split())
    for css in styles:
        digest = base64.b64encode(hashlib.sha256(css.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in allowed


def test_a_connection_refused_before_the_app_carries_the_headers(guarded: ServerProcess) -> None:
    """A request whose headers never finish gets conns.py's own 408."""
    status, head = raw_exchange(guarded.port, b"GET /v1/auth/me HTTP/1.1\r\nHost: x\r\n")
    assert status == 408
    assert_secured(head)


def test_an_unhandled_error_answer_carries_the_headers() -> None:
    """A 500 comes from Starlette's outermost error middleware, outside the others."""

    async def boom(request: Request) -> Response:
        raise RuntimeError("a bug")

    async def internal(request: Request, exc: Exception) -> Response:
        return Response(b"{}", 500, media_type="application/json")

    app = App(hsts=60, routes=[Route("/boom", boom)],
              exception_handlers={Exception: internal})
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off",
                                           log_level="critical"))
    thread = threading.Thread(target=server.run)
    thread.start()
    try:
        while not server.started:
            assert thread.is_alive(), "uvicorn did not start"
            time.sleep(0.02)
        r = httpx.get(f"http://127.0.0.1:{port}/boom")
    finally:
        server.should_exit = True
        thread.join()
    assert r.status_code == 500
    assert_secured(r.headers)
    assert r.headers["strict-transport-security"] == "max-age=60"


def test_no_hsts_unless_configured(server: ServerProcess) -> None:
    r = httpx.get(f"{server.base_url}/v1/nowhere")
    assert r.status_code == 404
    assert_secured(r.headers)
    assert "strict-transport-security" not in r.headers


def test_user_budget_headers_count_down_to_the_429(guarded: ServerProcess) -> None:
    with Api(guarded.base_url) as api:
        dev = api.user()
        seen = []
        for _ in range(RATE_USER):
            r = api.get("/v1/auth/me", headers=dev.headers)
            assert r.status_code == 200
            assert r.headers["x-ratelimit-limit"] == str(RATE_USER)
            seen.append(int(r.headers["x-ratelimit-remaining"]))
            assert 0 < int(r.headers["x-ratelimit-reset"]) <= 10**9
        assert seen == list(range(RATE_USER - 1, -1, -1))
        refused = api.get("/v1/auth/me", headers=dev.headers)
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "rate_limited"
        assert refused.headers["x-ratelimit-remaining"] == "0"
        assert refused.headers["retry-after"] == refused.headers["x-ratelimit-reset"]
        assert_secured(refused.headers)
        # Unbudgeted routes and requests without a user carry none.
        assert "x-ratelimit-limit" not in api.get("/openapi.json").headers


def test_login_attempts_report_the_tightest_of_their_limits(guarded: ServerProcess) -> None:
    with Api(guarded.base_url) as api:
        api.user()  # a register and a login from this IP, for another address
        email = api.register()  # counts against this address's budget and the IP's
        left = []
        for _ in range(3):
            r = api.post("/v1/auth/login", json={"email": email, "password": PASSWORD,
                                                 "device": {"name": "d", "platform": "t"}})
            assert r.status_code == 200
            assert r.headers["x-ratelimit-limit"] == str(RATE_AUTH)
            left.append(int(r.headers["x-ratelimit-remaining"]))
    # One less each time, on the IP's budget: it has counted at least 4 attempts by then,
    # the address's 2 (its budget would say RATE_AUTH - 2).
    assert left == [left[0], left[0] - 1, left[0] - 2]
    assert left[0] <= RATE_AUTH - 4
