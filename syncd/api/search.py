"""/v1/search?q=: full-text search over the notes the caller can see (syncd/search.py).

`limit` ≤ 100 (default 20); `deleted=true` includes deleted notes.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from syncd import search as searching
from syncd.api.common import principal, query_int, respond, services
from syncd.api.resource import Flag, query_bool
from syncd.errors import BadRequest
from syncd.limits import MAX_QUERY, MAX_SEARCH_LIMIT
from syncd.messages import NO_NUL
from syncd.openapi import describe
from syncd.responses import SearchResults


async def search(request: Request) -> Response:
    who = await principal(request)
    q = request.query_params.get("q", "")
    if len(q) > MAX_QUERY:
        raise BadRequest(f"q is at most {MAX_QUERY} characters", {"param": "q"},
                         code="invalid_request")
    limit = query_int(request, "limit", 20, 1, MAX_SEARCH_LIMIT)
    deleted = bool(query_bool(request, "deleted"))
    return respond(request, await searching.search(services(request).db, who, q, limit, deleted))


describe("/v1/search", "GET", response=SearchResults,
         summary="Full-text search over the notes the caller can see",
         query={"q": Annotated[str, msgspec.Meta(max_length=MAX_QUERY, pattern=NO_NUL)],
                "limit": Annotated[int, msgspec.Meta(ge=1, le=MAX_SEARCH_LIMIT)],
                "deleted": Flag})

routes = [Route("/v1/search", search, methods=["GET"])]
