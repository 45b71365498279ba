"""/v1/auth/oidc: sign in with an OpenID provider.

The app opens `start` in a browser; the browser comes back from the provider to
`callback`, which sends it on to the app's URL with a one-time `code`; the app POSTs that
code to `token` and gets what a password login returns (a new device and its tokens).
"""

from __future__ import annotations

import secrets
from typing import Annotated
from urllib.parse import urlencode

import msgspec
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from syncd import signin
from syncd.accounts import seen
from syncd.api.common import read_body, respond, services
from syncd.errors import BadRequest, NotFound
from syncd.messages import NO_NUL
from syncd.oidc import Provider
from syncd.openapi import describe
from syncd.responses import Session

COOKIE = "syncd_oidc"  # names the browser that started a sign-in


class OidcTokenRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    code: Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=NO_NUL)]


def _provider(request: Request) -> Provider:
    """The configured provider, built on first use (discovery waits for the first sign-in,
    so a provider that is down does not stop syncd from starting)."""
    provider: Provider | None = getattr(request.app.state, "oidc_provider", None)
    if provider is None:
        s = services(request).settings
        if not (s.oidc_issuer and s.oidc_client_id and s.oidc_redirect_url
                and s.oidc_app_url):
            raise NotFound("sign-in with an OpenID provider is not configured",
                           code="oidc_disabled")
        provider = Provider(s.oidc_issuer, s.oidc_client_id, s.oidc_client_secret,
                            s.oidc_redirect_url)
        request.app.state.oidc_provider = provider
    return provider


async def start(request: Request) -> Response:
    provider = _provider(request)
    limiter = getattr(request.app.state, "limiter", None)
    if limiter is not None:
        ip = request.client.host if request.client else "unknown"
        await limiter.hit("oidc-ip", ip, services(request).settings.rate_auth)
    attempt = await provider.begin()
    browser = secrets.token_urlsafe(32)
    await signin.remember(services(request).db, attempt, browser,
                          request.query_params.get("device_name", "device"),
                          request.query_params.get("platform", "unknown"))
    response = RedirectResponse(attempt.url, status_code=302)
    # Lax: the provider's redirect back is a top-level GET, which carries it.
    response.set_cookie(COOKIE, browser, max_age=signin.ATTEMPT_TTL, path="/v1/auth/oidc",
                        httponly=True, samesite="lax",
                        secure=provider.redirect_url.startswith("https:"))
    return response


async def callback(request: Request) -> Response:
    provider = _provider(request)
    query = request.query_params
    state, code = query.get("state"), query.get("code")
    # A refusal may come without a state (some providers drop it): it changes nothing.
    if "error" in query and not state:
        raise _denied(query.get("error", ""))
    if not state:
        raise BadRequest("the provider's answer has no state", code="oidc_state")
    attempt = await signin.recall(services(request).db, state, request.cookies.get(COOKIE))
    if "error" in query or not code:
        raise _denied(query.get("error", ""))
    who = await provider.finish(code, attempt["nonce"], attempt["verifier"])
    handoff, ended = await signin.link(services(request).db, who, attempt["device_name"],
                                       attempt["platform"])
    for device in ended:  # an unverified account claimed: its sockets close on every node
        services(request).hub.close_device(device, "account claimed by its email's owner")
    app_url = services(request).settings.oidc_app_url
    sep = "&" if "?" in app_url else "?"
    response = RedirectResponse(f"{app_url}{sep}{urlencode({'code': handoff})}",
                                status_code=303)
    response.delete_cookie(COOKIE, path="/v1/auth/oidc")
    return response


def _denied(error: str) -> BadRequest:
    return BadRequest("the provider did not sign the user in",
                      {"provider_error": error[:100]}, code="oidc_denied")


async def token(request: Request) -> Response:
    _provider(request)
    body = await read_body(request, OidcTokenRequest, limit=4096)
    svc = services(request)
    result = await svc.auth.sign_in(lambda conn: signin.redeem(conn, body.code))
    if result is None:
        raise BadRequest("the sign-in code is unknown, used or expired",
                         code="oidc_code_invalid")
    await seen(svc.db, result["device_id"], request.client.host if request.client else None,
               request.headers.get("user-agent"))
    return respond(request, result)


describe("/v1/auth/oidc/start", "GET", status=302, auth=False, errors=(404, 429),
         query={"device_name": str, "platform": str},
         summary="Start signing in with the OpenID provider (open in a browser)")
describe("/v1/auth/oidc/callback", "GET", status=303, auth=False, errors=(401, 404),
         query={"code": str, "state": str, "error": str},
         summary="The provider's answer; sends the browser to the app with a one-time code")
describe("/v1/auth/oidc/token", "POST", request=OidcTokenRequest, response=Session,
         auth=False, errors=(401, 404),
         summary="Exchange the one-time sign-in code for a new device's tokens")

routes = [
    Route("/v1/auth/oidc/start", start, methods=["GET"]),
    Route("/v1/auth/oidc/callback", callback, methods=["GET"]),
    Route("/v1/auth/oidc/token", token, methods=["POST"]),
]
