"""/v1/auth and /v1/devices: register, login, refresh, logout, me, list and revoke devices."""

from __future__ import annotations

from uuid import UUID

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from syncd.accounts import seen
from syncd.api.common import path_uuid, principal, read_body, respond, services
from syncd.errors import NotFound
from syncd.messages import LoginRequest, RefreshRequest, RegisterRequest
from syncd.openapi import describe
from syncd.responses import Devices, Me, Registered, Session, Tokens


async def _limit(request: Request, email: str) -> None:
    limiter = getattr(request.app.state, "limiter", None)
    if limiter is not None:
        ip = request.client.host if request.client else "unknown"
        await limiter.auth_attempt(ip, email)


async def register(request: Request) -> Response:
    body = await read_body(request, RegisterRequest, limit=64 * 1024)
    await _limit(request, body.email)
    svc = services(request)
    mails = svc.accounts
    user = await svc.auth.register(body.email, body.password, body.name,
                                   then=mails.verification_mail if mails else None)
    if mails is not None:
        mails.outbox.wake()
    return respond(request, {"user": user}, 201)


async def _seen(request: Request, device: UUID) -> None:
    await seen(services(request).db, device, request.client.host if request.client else None,
               request.headers.get("user-agent"))


async def login(request: Request) -> Response:
    body = await read_body(request, LoginRequest, limit=64 * 1024)
    await _limit(request, body.email)
    result = await services(request).auth.login(body.email, body.password, body.device.name,
                                                body.device.platform)
    await _seen(request, result["device_id"])
    return respond(request, result)


async def refresh(request: Request) -> Response:
    body = await read_body(request, RefreshRequest, limit=64 * 1024)
    auth = services(request).auth
    result = await auth.refresh(body.refresh_token)
    await _seen(request, auth.decode(result["access_token"]).device_id)
    return respond(request, result)


async def logout(request: Request) -> Response:
    who = await principal(request)
    await services(request).auth.revoke(who, who.device_id)
    services(request).hub.close_device(who.device_id, "logged out")
    return Response(status_code=204)


async def me(request: Request) -> Response:
    return respond(request, await services(request).auth.me(await principal(request)))


async def devices(request: Request) -> Response:
    who = await principal(request)
    return respond(request, {"devices": await services(request).auth.devices(who)})


async def revoke_device(request: Request) -> Response:
    who = await principal(request)
    device = path_uuid(request, "device_id")
    if not await services(request).auth.revoke(who, device):
        raise NotFound("no such device")
    services(request).hub.close_device(device, "device revoked")
    return Response(status_code=204)


describe("/v1/auth/register", "POST", request=RegisterRequest, response=Registered,
         status=201, errors=(409, 429),
         summary="Create an account")
describe("/v1/auth/login", "POST", request=LoginRequest, response=Session,
         errors=(401, 429),
         summary="Log in as a new device")
describe("/v1/auth/refresh", "POST", request=RefreshRequest, response=Tokens,
         errors=(401,),
         summary="Rotate the refresh token, get a new access token")
describe("/v1/auth/logout", "POST", status=204, summary="End the calling device")
describe("/v1/auth/me", "GET", response=Me, summary="The caller")
describe("/v1/devices", "GET", response=Devices, summary="The caller's devices")
describe("/v1/devices/{device_id}", "DELETE", status=204,
         summary="Revoke a device (its tokens and sockets end at once)")

routes = [
    Route("/v1/auth/register", register, methods=["POST"]),
    Route("/v1/auth/login", login, methods=["POST"]),
    Route("/v1/auth/refresh", refresh, methods=["POST"]),
    Route("/v1/auth/logout", logout, methods=["POST"]),
    Route("/v1/auth/me", me, methods=["GET"]),
    Route("/v1/devices", devices, methods=["GET"]),
    Route("/v1/devices/{device_id}", revoke_device, methods=["DELETE"]),
]
