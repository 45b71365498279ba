"""The ASGI application: routes, error handling, and the start-up → serve → shutdown cycle."""

from __future__ import annotations

import gc
import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import psycopg
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Scope

from syncd import sync
from syncd.accounts import Accounts
from syncd.api import account as account_routes
from syncd.api import auth as auth_routes
from syncd.api import conflicts as conflict_routes
from syncd.api import credentials as credential_routes
from syncd.api import history as history_routes
from syncd.api import members as member_routes
from syncd.api import notes as note_routes
from syncd.api import oidc as oidc_routes
from syncd.api import ops as ops_routes
from syncd.api import projects as project_routes
from syncd.api import search as search_routes
from syncd.api import settings as settings_routes
from syncd.api import sync as sync_routes
from syncd.api.common import error_response
from syncd.auth import Auth
from syncd.bus import connect_bus
from syncd.config import Settings
from syncd.conns import Connections
from syncd.db import Database
from syncd.errors import NotFound, SyncdError
from syncd.fairness import Fairness, Gate
from syncd.fanout import Hub
from syncd.headers import SecurityHeaders
from syncd.logs import redact_uvicorn
from syncd.mail import Outbox, running
from syncd.messages import encode
from syncd.metrics import Metrics
from syncd.middleware import RequestContext
from syncd.migrate import migrate_sync
from syncd.ratelimit import Limiter
from syncd.rooms import Rooms
from syncd.services import Services
from syncd.ws_collab import routes as ws_collab_routes
from syncd.ws_sync import routes as ws_sync_routes

log = logging.getLogger("syncd")


def tune_gc() -> None:
    """A 1000-op push allocates tens of thousands of short-lived objects: at the default
    threshold the cycle collector ran many times per push, and its full passes walked every
    module and cache loaded at start-up. Those are frozen out of its reach, and it runs
    after more allocations. Reference counting still frees nearly everything at once."""
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)


def load_secret(settings: Settings) -> str:
    """The token-signing secret: SYNCD_SECRET, or one generated once and kept in data_dir."""
    if settings.secret:
        return settings.secret
    path = Path(settings.data_dir) / "secret"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(48))
        path.chmod(0o600)
    return path.read_text().strip()


async def _syncd_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SyncdError)
    return error_response(exc)


def allowed_methods(request: Request) -> str:
    """Every method some route takes at this path: a path has one Route per method, and
    Starlette's 405 names only the methods of the first one it tried."""
    methods: set[str] = set()
    for route in request.app.routes:
        if isinstance(route, Route) and route.path_regex.match(request.url.path):
            methods |= route.methods or set()
    return ", ".join(sorted(methods))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    body = {"error": {"code": code, "message": str(exc.detail), "details": {}}}
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = allowed_methods(request)
    return Response(encode(body), exc.status_code, media_type="application/json",
                    headers=headers)


async def _internal_error(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    body = {"error": {"code": "internal", "message": "internal server error", "details": {}}}
    return Response(encode(body), 500, media_type="application/json")


class App(Starlette):
    """Starlette with the security headers outermost: user middleware sits inside its
    500 handler, whose answer to an unhandled error would go out without them."""

    def __init__(self, hsts: int = 0, **kwargs: Any) -> None:
        self.hsts = hsts
        super().__init__(**kwargs)

    def build_middleware_stack(self) -> ASGIApp:
        return SecurityHeaders(super().build_middleware_stack(), hsts=self.hsts)


# The notes web app (clients/js/app), built into the package; `make run` builds it.
WEBAPP = Path(__file__).parent / "webapp"
# What the app needs and nothing more: its own scripts, styles (files, and the
# constructed sheets its editor adopts), images, and calls to this origin (HTTP, WebSocket).
WEBAPP_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
              "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


class WebApp(StaticFiles):
    """The web app's files, with the app's Content-Security-Policy. Their names do not
    change between builds, so a browser revalidates them (ETag) before each use."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers["Content-Security-Policy"] = WEBAPP_CSP
        response.headers["Cache-Control"] = "no-cache"
        return response


def routes() -> list[BaseRoute]:
    return [*auth_routes.routes, *account_routes.routes, *credential_routes.routes,
            *sync_routes.routes,
            *member_routes.routes,
            *ops_routes.routes, *ws_sync_routes, *ws_collab_routes,
            *note_routes.routes, *project_routes.routes,
            *history_routes.routes, *search_routes.routes, *conflict_routes.routes,
            *settings_routes.routes, *oidc_routes.routes,
            Mount("/app", WebApp(directory=WEBAPP, html=True, check_dir=False), name="app")]


def create_app(settings: Settings | None = None, migrate: bool = True) -> Starlette:
    settings = settings or Settings()
    metrics = Metrics()
    limiter = Limiter(settings)
    gate = Gate(settings.heavy_per_user, settings.pool_max // 2, settings.heavy_wait)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if not settings.database_url:
            raise SystemExit("DATABASE_URL is not set (syncd serve starts an embedded one)")
        if migrate:
            migrate_sync(settings.database_url)
        db = Database(settings.database_url, settings.pool_min, settings.pool_max)
        await db.open()
        await sync.resume_clock(db)
        hub = Hub()
        auth = Auth(db, load_secret(settings), settings.access_ttl, settings.refresh_ttl,
                    settings.device_check_ttl, closed=hub.close_device,
                    unverified_days=settings.unverified_days)
        hub.device_closed.append(auth.forget_device)
        rooms = Rooms(db, hub, coalesce=settings.collab_coalesce,
                      peer_bytes=settings.collab_peer_bytes,
                      send_buffer=settings.collab_send_buffer,
                      warm_bytes=settings.collab_warm_bytes)
        outbox = Outbox(db, settings)
        app.state.services = Services(settings, db, auth, hub, metrics, rooms,
                                      Accounts(db, settings, outbox))
        tune_gc()
        try:
            # Rooms stop first: their write-behind drains while the pool and bus are up.
            async with connect_bus(settings.redis_url, hub), running(outbox), rooms:
                yield
        finally:
            await limiter.close()
            await db.close()

    # CORS outermost: a 429 or 413 still carries the headers a browser needs to read it.
    # Without configured origins it is left out: it would only cost every request a pass.
    cors = [Middleware(CORSMiddleware, allow_origins=settings.cors_origins,
                       allow_methods=["GET", "POST", "PATCH", "PUT", "DELETE"],
                       allow_headers=["Authorization", "Content-Type", "If-Match",
                                      "If-None-Match", "X-Request-ID"],
                       expose_headers=["ETag", "Retry-After", "X-Request-ID",
                                       "X-RateLimit-Limit", "X-RateLimit-Remaining",
                                       "X-RateLimit-Reset"], max_age=600)]
    redact_uvicorn()
    app = App(
        hsts=settings.hsts,
        routes=routes(),
        lifespan=lifespan,
        middleware=[*(cors if settings.cors_origins else []),
                    Middleware(RequestContext, metrics=metrics, limiter=limiter),
                    Middleware(Fairness, gate=gate,
                               statement_timeout=settings.statement_timeout)],
        exception_handlers={
            SyncdError: _syncd_error,
            NotFound: _syncd_error,
            HTTPException: _http_error,
            # A database error is answered here, below ServerErrorMiddleware, which would
            # re-raise to uvicorn and drop the client's keep-alive connection.
            psycopg.Error: _internal_error,
            Exception: _internal_error,
        },
    )
    app.state.metrics = metrics
    app.state.connections = Connections(settings)
    app.state.limiter = limiter
    app.state.gate = gate
    metrics.bind(lambda: getattr(app.state, "services", None), app.state.connections, gate)
    return app
