"""A real OpenID provider on loopback (the `oidc-provider-mock` package from PyPI, run as
its own process), reached through a gateway the tests control.

The gateway passes every request through with its Host header, so the provider names the
gateway's address as its issuer and in every endpoint. It stands where an attacker between
syncd and the provider would: told to, it re-signs the ID token the provider issues with a
key of its own, keeping every claim and the key id the provider used. It also keeps
the forms syncd posts to the token endpoint, to check the PKCE verifier on the wire.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.fix_server import free_port


@contextmanager
def provider_process(log_dir: Path) -> Iterator[str]:
    """The provider, with client registration required; yields its base URL."""
    port = free_port()
    log_dir.mkdir(parents=True, exist_ok=True)
    # The provider refuses plain HTTP unless told it is a development setup.
    env = {**os.environ, "AUTHLIB_INSECURE_TRANSPORT": "1"}
    with (log_dir / "oidc-provider.log").open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-W", "ignore", "-m", "oidc_provider_mock", "--host", "127.0.0.1",
             "--port", str(port), "--require-registration", "true", "--require-nonce", "true"],
            env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{url}/.well-known/openid-configuration", timeout=1)
                break
            except httpx.HTTPError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the OpenID provider did not start") from None
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


class Gateway:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.forge = False  # re-sign ID tokens with the attacker's key
        self.token_requests: list[dict[str, list[str]]] = []  # the forms syncd posted
        self.attacker_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self._forward()

            def do_POST(self) -> None:
                self._forward()

            def do_PUT(self) -> None:
                self._forward()

            def _forward(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in ("content-length", "connection")}
                r = httpx.request(self.command, gateway.upstream + self.path, headers=headers,
                                  content=body, timeout=30)
                if self.path.startswith("/oauth2/token"):
                    gateway.token_requests.append(parse_qs(body.decode()))
                content = r.content
                if gateway.forge and self.path.startswith("/oauth2/token") and r.is_success:
                    content = gateway.resign(content)
                self.send_response(r.status_code)
                for k, v in r.headers.multi_items():
                    if k.lower() not in ("content-length", "connection", "transfer-encoding",
                                         "content-encoding", "date", "server"):
                        self.send_header(k, v)
                self.send_header("content-length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def resign(self, content: bytes) -> bytes:
        body = json.loads(content)
        token = body["id_token"]
        header = jwt.get_unverified_header(token)
        claims = jwt.decode(token, options={"verify_signature": False})
        kid = {"kid": header["kid"]} if "kid" in header else None
        body["id_token"] = jwt.encode(claims, self.attacker_key, algorithm="RS256",
                                      headers=kid)
        return json.dumps(body).encode()

    def __enter__(self) -> Gateway:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
