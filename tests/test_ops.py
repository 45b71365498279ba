"""Operating syncd: /health, /metrics, /openapi.json (+ a schemathesis run), /docs, rate
limits, CORS, request ids and early body-size refusal; all against real server processes."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from openapi_spec_validator import validate

from tests.fix_server import ServerProcess
from tests.helpers import PASSWORD, Api, new_id
from tests.test_openapi_responses import conforms


def metric(text: str, name: str, **labels: str) -> float:
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    total = 0.0
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        series, _, value = line.rpartition(" ")
        got = series[len(name):]
        if got.startswith("{"):
            have = dict(p.split("=", 1) for p in got.strip("{}").split(","))
            if all(have.get(k) == f'"{v}"' for k, v in labels.items()):
                total += float(value)
        elif not want and got == "":
            total += float(value)
    return total


def test_health_ok(api: Api) -> None:
    r = api.get("/health")
    assert r.status_code == 200
    assert r.json()["status"] == "ok"
    assert r.json()["checks"]["postgres"]["status"] == "ok"


def test_health_503_when_postgres_stops(tmp_path: Path) -> None:
    from pgserver.postgres_server import get_server

    pg = get_server(tmp_path / "pg", cleanup_mode="stop")
    server = ServerProcess(pg.get_uri(), tmp_path / "srv")
    server.start()
    try:
        assert httpx.get(f"{server.base_url}/health").status_code == 200
        pg.cleanup()  # stops this PostgreSQL
        r = httpx.get(f"{server.base_url}/health", timeout=15)
        assert conforms(r, "/health", status=503)["status"] == "degraded"
        assert r.json()["checks"]["postgres"]["status"] == "down"
    finally:
        server.stop()


def test_metrics_move_after_push(api: Api) -> None:
    before = api.get("/metrics").text
    d = api.user()
    nid = new_id()
    d.push([d.set("note", nid, title="a"), d.set("note", nid, title=1)])
    d.push([d.set("note", nid, title="b")])
    after = api.get("/metrics")
    assert after.headers["content-type"].startswith("text/plain")
    text = after.text
    assert metric(text, "syncd_pushes_total") >= metric(before, "syncd_pushes_total") + 2
    for status in ("applied", "rejected"):
        assert (metric(text, "syncd_ops_total", status=status)
                >= metric(before, "syncd_ops_total", status=status) + 1)
    assert (metric(text, "syncd_http_requests_total", route="/v1/sync/push", status="200")
            >= metric(before, "syncd_http_requests_total", route="/v1/sync/push",
                      status="200") + 2)
    assert metric(text, "syncd_events_fanned_out_total") >= 1
    assert "syncd_http_request_duration_seconds_bucket" in text
    assert "syncd_open_sockets" in text
    assert 'syncd_db_pool{stat="pool_size"}' in text


def test_openapi_is_valid_31_and_lists_every_route(api: Api, server: ServerProcess) -> None:
    doc = api.get("/openapi.json").json()
    validate(doc)
    assert doc["openapi"].startswith("3.1")
    push = doc["paths"]["/v1/sync/push"]["post"]
    assert push["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/PushRequest")
    assert "Op" in doc["components"]["schemas"]
    for path in ("/health", "/v1/stats", "/v1/export", "/v1/account", "/v1/auth/login"):
        assert path in doc["paths"]
    page = api.get("/docs")
    assert page.status_code == 200 and "/v1/sync/push" in page.text
    assert "http://" not in page.text and "https://" not in page.text  # self-contained


def test_schemathesis_finds_no_server_errors(api: Api, server: ServerProcess) -> None:
    d = api.user()
    st = Path(sys.executable).parent / "st"
    # Endpoints that would end the session under test (logout, revoking devices, deleting
    # the account with a lucky password) are left out; everything else is fuzzed.
    cmd = [str(st), "run", f"{server.base_url}/openapi.json", "--checks",
           "not_a_server_error,response_schema_conformance", "-n", "20",
           "--generation-deterministic", "-H", f"Authorization: Bearer {d.token}",
           "--exclude-path", "/v1/auth/logout", "--exclude-path", "/v1/devices/{device_id}",
           "--exclude-path", "/v1/account", "--exclude-path", "/docs",
           "--exclude-path", "/metrics", "--request-timeout", "20", "--max-failures", "5"]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]


@pytest.fixture
def limited(tmp_root: Path, pg_url: str) -> Iterator[ServerProcess]:
    proc = ServerProcess(pg_url, tmp_root / "limited", env={
        "SYNCD_RATE_AUTH": "3", "SYNCD_RATE_USER": "5", "SYNCD_RATE_WINDOW": "2",
        "SYNCD_CORS_ORIGINS": "https://app.example"})
    proc.start()
    yield proc
    proc.stop()


def _wait_for_window(window: int = 2) -> None:
    """Start just after a fixed window opens, so a burst lands in one window."""
    time.sleep(window - time.time() % window + 0.05)


def test_login_rate_limit_trips_and_resets(limited: ServerProcess, api: Api) -> None:
    email = api.register()  # registered through the unlimited session server
    with Api(limited.base_url) as client:
        body = {"email": email, "password": PASSWORD, "device": {"name": "x"}}
        _wait_for_window()
        codes = [client.post("/v1/auth/login", json=body).status_code for _ in range(4)]
        assert codes[:3] == [200, 200, 200] and codes[3] == 429
        r = client.post("/v1/auth/login", json={**body, "email": "Other" + email})
        assert r.status_code == 429  # the same IP, another email
        retry = client.post("/v1/auth/login", json=body)
        assert retry.status_code == 429 and 1 <= int(retry.headers["Retry-After"]) <= 2
        assert retry.json()["error"]["code"] == "rate_limited"
        time.sleep(int(retry.headers["Retry-After"]) + 0.1)
        assert client.post("/v1/auth/login", json=body).status_code == 200


def test_user_budget_trips_and_resets(limited: ServerProcess, api: Api) -> None:
    email = api.register()
    with Api(limited.base_url) as client:
        _wait_for_window()
        d = client.login(email)
        codes = [d.get("/v1/auth/me").status_code for _ in range(6)]
        assert codes[:5] == [200] * 5 and codes[5] == 429
        assert "Retry-After" in d.get("/v1/auth/me").headers
        assert client.get("/health").status_code == 200  # not budgeted
        time.sleep(2.1)
        assert d.get("/v1/auth/me").status_code == 200


def test_cors_preflight(limited: ServerProcess) -> None:
    r = httpx.options(f"{limited.base_url}/v1/sync/pull", headers={
        "Origin": "https://app.example", "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "authorization"})
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == "https://app.example"
    assert "authorization" in r.headers["access-control-allow-headers"].lower()
    other = httpx.options(f"{limited.base_url}/v1/sync/pull", headers={
        "Origin": "https://evil.example", "Access-Control-Request-Method": "GET"})
    assert "access-control-allow-origin" not in other.headers


def test_request_id_in_and_out(api: Api) -> None:
    assert api.get("/health", headers={"X-Request-ID": "abc-123"}).headers[
        "x-request-id"] == "abc-123"
    generated = api.get("/health").headers["x-request-id"]
    assert len(generated) == 32
    forged = "a\\nb{" * 3  # not an id we would echo into logs
    assert api.get("/health", headers={"X-Request-ID": forged}).headers[
        "x-request-id"] != forged


def test_declared_oversize_body_refused_early(api: Api, server: ServerProcess) -> None:
    """A declared Content-Length over the limit is answered before any body is sent."""
    d = api.user()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"POST /v1/sync/push HTTP/1.1\r\nHost: x\r\n"
                     b"Authorization: Bearer " + d.token.encode() + b"\r\n"
                     b"Content-Type: application/json\r\n"
                     b"Content-Length: 67108864\r\n\r\n")
        # The server closes after its answer; headers and body may arrive in separate reads.
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
        reply = b"".join(chunks).decode()
    assert reply.startswith("HTTP/1.1 413"), reply
    assert '"too_large"' in reply


def test_sigterm_stops_the_embedded_postgres(tmp_path: Path) -> None:
    """`docker stop` and systemd send SIGTERM: the embedded PostgreSQL stops with syncd."""
    import signal

    server = ServerProcess("", tmp_path / "srv")  # no DATABASE_URL: the embedded one
    server.start(timeout=120)
    pid_file = tmp_path / "srv" / "pg" / "postmaster.pid"
    assert pid_file.exists()
    assert server.proc is not None
    try:
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(30) == 0
        assert not pid_file.exists(), "the embedded PostgreSQL is still running"
    finally:
        if pid_file.exists():  # stop what a failure left behind (SIGINT: fast shutdown)
            os.kill(int(pid_file.read_text().split()[0]), signal.SIGINT)
