"""/v1/settings: the caller's settings (syncd/settings.py).

`GET` → `{id, values, clocks, version, updated_at}` with `ETag: W/"<version>"`.
`PATCH {"values": {key: JSON value or null}}` sets those keys (null clears one), leaves
the others, and answers the settings as saved; `If-Match` is honoured.
"""

from __future__ import annotations

from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from syncd import settings
from syncd.api.common import principal, read_body, respond, services
from syncd.edits import check_fields, etag
from syncd.limits import MAX_SETTINGS_BYTES
from syncd.messages import Str
from syncd.openapi import describe
from syncd.responses import SettingsView


class SettingsPatch(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    values: dict[str, Any]


def _respond(request: Request, view: dict[str, Any]) -> Response:
    return respond(request, view, headers={"ETag": etag(view["version"])})


async def get(request: Request) -> Response:
    who = await principal(request)
    return _respond(request, await settings.read(services(request).db, who))


async def patch(request: Request) -> Response:
    who = await principal(request)
    # Room for a full set of values in JSON, escapes and all; each is checked after.
    body = await read_body(request, SettingsPatch, limit=2 * MAX_SETTINGS_BYTES)
    values = check_fields("settings", body.values)
    svc = services(request)
    return _respond(request, await settings.patch(svc.db, svc.hub, who, values,
                                                  request.headers.get("if-match")))


describe("/v1/settings", "GET", response=SettingsView, summary="The caller's settings")
describe("/v1/settings", "PATCH", request=SettingsPatch, response=SettingsView,
         headers={"If-Match": Str}, errors=(412, 422),
         summary="Set some of the caller's settings (null clears a key)")

routes = [
    Route("/v1/settings", get, methods=["GET"]),
    Route("/v1/settings", patch, methods=["PATCH"]),
]
