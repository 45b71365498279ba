"""Operating endpoints: /health, /metrics, /openapi.json and the /docs page."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from syncd.api.common import services
from syncd.metrics import CONTENT_TYPE
from syncd.openapi import DOCS_CSP, describe, docs_page, document
from syncd.responses import Health

CHECK_TIMEOUT = 2.0


async def _check_postgres(request: Request) -> dict[str, Any]:
    start = time.perf_counter()
    try:
        async with asyncio.timeout(CHECK_TIMEOUT):
            async with services(request).db.pool.connection(timeout=CHECK_TIMEOUT) as conn:
                await conn.execute("SELECT 1")
    except Exception as e:  # any failure is the answer: degraded
        return {"status": "down", "error": type(e).__name__}
    return {"status": "ok", "latency_ms": round((time.perf_counter() - start) * 1000, 2)}


async def _check_redis(request: Request) -> dict[str, Any]:
    client = request.app.state.limiter.redis()
    start = time.perf_counter()
    try:
        async with asyncio.timeout(CHECK_TIMEOUT):
            await client.ping()
    except Exception as e:  # as above
        return {"status": "down", "error": type(e).__name__}
    return {"status": "ok", "latency_ms": round((time.perf_counter() - start) * 1000, 2)}


async def health(request: Request) -> Response:
    """PostgreSQL (and Redis, when configured) reachable: 200, otherwise 503."""
    checks = {"postgres": await _check_postgres(request)}
    if services(request).settings.redis_url:
        checks["redis"] = await _check_redis(request)
    ok = all(c["status"] == "ok" for c in checks.values())
    return JSONResponse({"status": "ok" if ok else "degraded", "checks": checks},
                        200 if ok else 503, headers={"Cache-Control": "no-store"})


async def metrics(request: Request) -> Response:
    """Prometheus text format."""
    return Response(request.app.state.metrics.render(), media_type=CONTENT_TYPE)


async def openapi_json(request: Request) -> Response:
    """This document."""
    doc = getattr(request.app.state, "openapi", None)
    if doc is None:  # built once: the routes do not change while the app runs
        doc = document(list(request.app.routes))
        request.app.state.openapi = doc
    return JSONResponse(doc)


async def docs(request: Request) -> Response:
    """A readable listing of the API."""
    await openapi_json(request)
    return HTMLResponse(docs_page(request.app.state.openapi),
                        headers={"Content-Security-Policy": DOCS_CSP})


describe("/health", "GET", response=Health, also=(503,),
         summary="Health of PostgreSQL and Redis (503 when degraded)",
         auth=False)
describe("/metrics", "GET", summary="Prometheus metrics", content_type=CONTENT_TYPE,
         auth=False)
describe("/openapi.json", "GET", summary="This OpenAPI 3.1 document", auth=False)
describe("/docs", "GET", summary="The API as a readable page", content_type="text/html",
         auth=False)

routes = [
    Route("/health", health, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
    Route("/openapi.json", openapi_json, methods=["GET"]),
    Route("/docs", docs, methods=["GET"]),
]
