"""Security headers on every HTTP response, the outermost layer of the app (outside even
Starlette's 500 handler, so an unhandled error's answer has them too).

- `X-Content-Type-Options: nosniff`: a browser never reads a JSON body (which may hold a
  note's text) as HTML or script;
- `Referrer-Policy: no-referrer`: no URL of syncd's is sent on to another site;
- `Content-Security-Policy`: a response that sets none gets `default-src 'none'`, which
  loads nothing and may not be framed; an HTML page sets its own, as strict as what it
  needs (`/docs`: its one inline stylesheet, by hash);
- `Strict-Transport-Security` when `SYNCD_HSTS` (its max-age in seconds) is set: only
  behind TLS, since a browser then refuses plain HTTP to the host for that long.

syncd/conns.py answers a few refusals itself, before the app; they carry `BASE` too.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

DEFAULT_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
BASE: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
)
_CSP = b"content-security-policy"


def page_csp(style_hash: str) -> str:
    """The policy of an HTML page whose only resource is one inline stylesheet."""
    return (f"default-src 'none'; style-src '{style_hash}'; frame-ancestors 'none'; "
            "base-uri 'none'; form-action 'none'")


class SecurityHeaders:
    def __init__(self, app: ASGIApp, hsts: int = 0) -> None:
        self.app = app
        self.extra = [*BASE]
        if hsts > 0:
            self.extra.append((b"strict-transport-security", f"max-age={hsts}".encode()))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                if not any(key.lower() == _CSP for key, _ in headers):
                    headers.append((_CSP, DEFAULT_CSP.encode()))
                message["headers"] = headers + self.extra
            await send(message)

        await self.app(scope, receive, send_secured)
