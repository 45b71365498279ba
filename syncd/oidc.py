"""The OpenID Connect relying party: the provider's discovery document, the authorization
URL (code flow with PKCE S256, `state` and `nonce`), the code exchange at its token
endpoint, and the ID token checked against the provider's published keys.

What a sign-in does with the verified claims (accounts, devices) is `syncd/signin.py`'s.
The provider is any issuer by configuration (`SYNCD_OIDC_*`); its keys are fetched from the
`jwks_uri` of its discovery document and refetched when a token names a key not yet seen
(the provider rotated its keys).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import httpx
import jwt

from syncd.errors import BadRequest, SyncdError, Unauthorized

# Asymmetric algorithms only: "none" and HS* (keyed with the client secret) are refused.
ALGORITHMS = {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384",
              "ES512", "EdDSA"}
LEEWAY = 60  # seconds of clock skew allowed between the provider and syncd
MAX_CLAIM = 320  # bytes of an email or subject kept


class ProviderError(SyncdError):
    """The provider could not be reached, or answered what OpenID Connect does not allow."""

    status = 502
    code = "oidc_provider"


@dataclass(frozen=True)
class Identity:
    """The verified claims of an ID token that a sign-in uses."""

    issuer: str
    subject: str
    email: str | None
    email_verified: bool
    name: str


@dataclass(frozen=True)
class Attempt:
    """A sign-in under way: what the browser is sent with, and what syncd keeps to check
    the answer (the state is only kept hashed)."""

    url: str
    state: str
    nonce: str
    verifier: str


def _challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def check_issuer(issuer: str) -> None:
    """HTTPS, except on loopback where a developer runs a provider of their own."""
    parts = urlsplit(issuer)
    if parts.scheme != "https" and parts.hostname not in ("localhost", "127.0.0.1", "::1"):
        raise ValueError(f"the OpenID issuer must be an https URL: {issuer}")


class Provider:
    def __init__(self, issuer: str, client_id: str, client_secret: str,
                 redirect_url: str) -> None:
        check_issuer(issuer)
        self.issuer = issuer.rstrip("/")
        self.client_id = client_id
        self.client_secret = client_secret
        self.redirect_url = redirect_url
        self._meta: dict[str, Any] | None = None
        self._keys: jwt.PyJWKClient | None = None
        self._lock = asyncio.Lock()

    async def _discover(self) -> dict[str, Any]:
        async with self._lock:
            if self._meta is None:
                meta = await self._get_json(f"{self.issuer}/.well-known/openid-configuration")
                # The document must be the issuer's own (OpenID Connect Discovery §4.3).
                if meta.get("issuer", "").rstrip("/") != self.issuer or not all(
                        isinstance(meta.get(k), str) for k in
                        ("authorization_endpoint", "token_endpoint", "jwks_uri")):
                    raise ProviderError("the provider's discovery document is not valid")
                self._keys = jwt.PyJWKClient(meta["jwks_uri"], cache_keys=True,
                                             lifespan=3600, timeout=10)
                self._meta = meta
            return self._meta

    async def _get_json(self, url: str) -> dict[str, Any]:
        try:
            async with httpx.AsyncClient(timeout=10) as client:
                r = await client.get(url)
                r.raise_for_status()
                body = r.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise ProviderError(f"the provider did not answer: {exc}") from None
        if not isinstance(body, dict):
            raise ProviderError("the provider answered something other than an object")
        return body

    async def begin(self) -> Attempt:
        meta = await self._discover()
        state, nonce = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        verifier = secrets.token_urlsafe(48)  # 64 characters, within RFC 7636's 43..128
        query = urlencode({
            "response_type": "code", "client_id": self.client_id,
            "redirect_uri": self.redirect_url, "scope": "openid email profile",
            "state": state, "nonce": nonce,
            "code_challenge": _challenge(verifier), "code_challenge_method": "S256"})
        endpoint = meta["authorization_endpoint"]
        sep = "&" if "?" in endpoint else "?"
        return Attempt(f"{endpoint}{sep}{query}", state, nonce, verifier)

    async def finish(self, code: str, nonce: str, verifier: str) -> Identity:
        """Exchange the code (with the PKCE verifier) and verify the ID token it returns."""
        meta = await self._discover()
        # client_secret_basic, the default of RFC 6749 §2.3.1: both parts form-encoded.
        auth = (quote(self.client_id, safe=""), quote(self.client_secret, safe=""))
        try:
            async with httpx.AsyncClient(timeout=10) as client:
                r = await client.post(meta["token_endpoint"], auth=auth, data={
                    "grant_type": "authorization_code", "code": code,
                    "redirect_uri": self.redirect_url, "code_verifier": verifier})
        except httpx.HTTPError as exc:
            raise ProviderError(f"the provider did not answer: {exc}") from None
        if r.status_code == 400:
            # invalid_grant and friends: a used, expired or foreign code, a wrong verifier.
            raise BadRequest("the provider refused the authorization code",
                             {"provider_error": _field(r, "error")}, code="oidc_code")
        if r.status_code != 200 or not isinstance(_field(r, "id_token"), str):
            raise ProviderError(f"the provider's token endpoint answered {r.status_code}")
        return await self.verify(str(_field(r, "id_token")), nonce, meta)

    async def verify(self, id_token: str, nonce: str, meta: dict[str, Any]) -> Identity:
        """OpenID Connect Core §3.1.3.7: signature by the provider's key, iss, aud, azp,
        exp, iat, then the nonce this sign-in sent."""
        algorithms = sorted(ALGORITHMS.intersection(
            meta.get("id_token_signing_alg_values_supported") or ["RS256"]))
        try:
            key = await asyncio.to_thread(self._signing_key, id_token)
            claims = jwt.decode(id_token, key.key, algorithms=algorithms,
                                audience=self.client_id, issuer=self.issuer, leeway=LEEWAY,
                                options={"require": ["iss", "aud", "exp", "iat", "sub"]})
        except jwt.PyJWKClientConnectionError as exc:
            raise ProviderError(f"the provider's keys could not be fetched: {exc}") from None
        except (jwt.PyJWKClientError, jwt.InvalidTokenError) as exc:
            raise Unauthorized(f"the ID token is not valid: {exc}",
                               code="oidc_id_token") from None
        aud = claims["aud"]
        if isinstance(aud, list) and len(aud) > 1 and claims.get("azp") != self.client_id:
            raise Unauthorized("the ID token was issued to another party",
                               code="oidc_id_token")
        if not isinstance(claims.get("nonce"), str) or not hmac.compare_digest(
                claims["nonce"].encode(), nonce.encode()):
            raise Unauthorized("the ID token's nonce is not this sign-in's",
                               code="oidc_nonce")
        sub, email, name = claims["sub"], claims.get("email"), claims.get("name")
        if not isinstance(sub, str) or not sub or len(sub.encode()) > MAX_CLAIM:
            raise Unauthorized("the ID token's subject is not valid", code="oidc_id_token")
        if not isinstance(email, str) or len(email.encode()) > MAX_CLAIM:
            email = None
        # Some providers send email_verified as the string "true".
        verified = claims.get("email_verified") in (True, "true")
        return Identity(self.issuer, sub, email, verified,
                        name[:200] if isinstance(name, str) else "")


    def _signing_key(self, id_token: str) -> jwt.PyJWK:
        """The provider's key the token names; a token that names none may omit it only
        when the provider publishes a single signing key (OpenID Connect Core §10.1)."""
        assert self._keys is not None
        if jwt.get_unverified_header(id_token).get("kid") is not None:
            return self._keys.get_signing_key_from_jwt(id_token)
        keys = self._keys.get_signing_keys()
        if len(keys) != 1:
            raise jwt.InvalidTokenError("the token names no key and the provider has several")
        return keys[0]


def _field(r: httpx.Response, name: str) -> Any:
    try:
        body = r.json()
    except ValueError:
        return None
    return body.get(name) if isinstance(body, dict) else None
