"""/v1/auth/password, /v1/auth/verify, /v1/auth/email: change or reset the password,
verify or change the email address (syncd/accounts.py)."""

from __future__ import annotations

from uuid import UUID

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from syncd.accounts import Accounts
from syncd.api.common import principal, read_body, respond, services
from syncd.auth import normalise_email
from syncd.errors import BadRequest, Conflict
from syncd.openapi import describe

LIMIT = 64 * 1024


class PasswordChange(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    current_password: str
    password: str
    keep_devices: bool = False  # the other devices stay signed in


class SignedOut(msgspec.Struct):
    signed_out: list[UUID]  # the devices the change revoked


class ResetRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    email: str


class Reset(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    token: str
    password: str


class EmailChange(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    password: str
    email: str


class Queued(msgspec.Struct):
    message: str


class VerifiedUser(msgspec.Struct):
    id: UUID
    email: str
    name: str
    email_verified: bool


class Verified(msgspec.Struct):
    user: VerifiedUser


def accounts(request: Request) -> Accounts:
    found = services(request).accounts
    assert found is not None  # made by the app's lifespan with the services
    return found


async def _limit(request: Request, kind: str, ident: str) -> None:
    """Mails asked for: per client IP and per account, `SYNCD_RATE_MAIL` a window."""
    limiter = request.app.state.limiter
    limit = limiter.settings.rate_mail
    await limiter.hit("mail-ip", request.client.host if request.client else "unknown", limit)
    await limiter.hit(f"mail-{kind}", ident, limit)


async def _password_attempt(request: Request, user: UUID) -> None:
    """A route that checks the password counts as a login attempt (SYNCD_RATE_AUTH)."""
    limiter = request.app.state.limiter
    await limiter.auth_attempt(request.client.host if request.client else "unknown", str(user))


def _close(request: Request, devices: list[UUID], reason: str) -> None:
    for device in devices:
        services(request).hub.close_device(device, reason)


async def change_password(request: Request) -> Response:
    who = await principal(request)
    body = await read_body(request, PasswordChange, limit=LIMIT)
    await _password_attempt(request, who.user_id)
    ended = await accounts(request).change_password(who, body.current_password, body.password,
                                                    body.keep_devices)
    _close(request, ended, "password changed")
    return respond(request, {"signed_out": ended})


async def forgot_password(request: Request) -> Response:
    body = await read_body(request, ResetRequest, limit=LIMIT)
    email = normalise_email(body.email)
    await _limit(request, "email", email)
    await accounts(request).request_reset(email)
    # The same answer whether the account exists or not.
    return respond(request, {"message": "if an account has this email, a link is on its way"},
                   202)


async def reset_password(request: Request) -> Response:
    body = await read_body(request, Reset, limit=LIMIT)
    _user, ended = await accounts(request).reset(body.token, body.password)
    _close(request, ended, "password reset")
    return Response(status_code=204)


async def verify(request: Request) -> Response:
    token = request.query_params.get("token")
    if not token or len(token) > 200:
        raise BadRequest("token is required", {"param": "token"}, code="invalid_request")
    user = await accounts(request).verify(token)
    return respond(request, {"user": {"id": user["id"], "email": user["email"],
                                      "name": user["name"], "email_verified": True}})


async def resend_verification(request: Request) -> Response:
    who = await principal(request)
    await _limit(request, "user", str(who.user_id))
    if not await accounts(request).resend_verification(who):
        raise Conflict("the email address is verified already", code="already_verified")
    return respond(request, {"message": "a verification link is on its way"}, 202)


async def change_email(request: Request) -> Response:
    who = await principal(request)
    body = await read_body(request, EmailChange, limit=LIMIT)
    await _password_attempt(request, who.user_id)
    await _limit(request, "user", str(who.user_id))
    await accounts(request).change_email(who, body.password, body.email)
    return respond(request, {"message": "a verification link is on its way to the new address; "
                                        "the address changes when it is followed"}, 202)


describe("/v1/auth/password", "POST", request=PasswordChange, response=SignedOut,
         summary="Change the password (the current one required); signs out the other "
                 "devices unless keep_devices")
describe("/v1/auth/password/forgot", "POST", request=ResetRequest, response=Queued,
         status=202, auth=False,
         summary="Mail a single-use password reset link (the same answer for any email)")
describe("/v1/auth/password/reset", "POST", request=Reset, status=204, auth=False,
         summary="Set a new password with a mailed reset token; signs out every device")
describe("/v1/auth/verify", "GET", response=Verified, query={"token": str}, auth=False,
         summary="Verify an email address with a mailed token (the link in the mail)")
describe("/v1/auth/verify/resend", "POST", response=Queued, status=202,
         summary="Mail a new verification link for the caller's address")
describe("/v1/auth/email", "POST", request=EmailChange, response=Queued, status=202,
         summary="Change the email address: a link mailed to the new one makes the change")

routes = [
    Route("/v1/auth/password", change_password, methods=["POST"]),
    Route("/v1/auth/password/forgot", forgot_password, methods=["POST"]),
    Route("/v1/auth/password/reset", reset_password, methods=["POST"]),
    Route("/v1/auth/verify", verify, methods=["GET"]),
    Route("/v1/auth/verify/resend", resend_verification, methods=["POST"]),
    Route("/v1/auth/email", change_email, methods=["POST"]),
]
