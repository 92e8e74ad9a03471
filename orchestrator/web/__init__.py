"""`campaign serve`: the HTTP service (FastAPI, OpenAPI at /docs) and the dashboard.

- `visitors`: what a website and its visitors call — subscriptions, the click
  link, the subscriber's own profile page, the service worker and snippet;
- `api`: `POST /api/events` for the site's backend (bearer `CAMPAIGN_API_KEY`);
- `dashboard`: the campaign author's pages, behind a login;
- `studio`: the authoring studio (`campaign studio`); read-only under `/studio` here,
  behind the same login.

Thin over `orchestrator.app.visitors`, `orchestrator.app.service` and `orchestrator.app.insights`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from orchestrator.app.service import Context, open_context
from orchestrator.app.visitors import Conflict, Refused
from orchestrator.language.records import RecordError
from orchestrator.store import failures
from orchestrator.studio.workspace import StudioError, Workspace
from orchestrator.web import api, dashboard, guard, prefect_ui, site, studio
from orchestrator.web.common import STATE_KEY, WRITERS_KEY, Writers, make_writers
from orchestrator.web.throttle import Throttle
from orchestrator.web.writer import StoreRefused, StoreUnavailable


def create_app(ctx: Context | None = None) -> FastAPI:
    """The app over `ctx` (default: a context from the environment, opened at start-up)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        found: Writers = getattr(app.state, WRITERS_KEY)
        await found.subscriptions.close()
        await found.events.close()

    app = FastAPI(
        lifespan=lifespan,
        title="campaign-flow",
        version="0.1.0",
        description="Push-notification campaigns drawn as flowcharts: subscriptions, "
        "events, click links, subscriber profiles and the campaign dashboard.",
        # FastAPI's OpenTelemetry hooks look the providers up on every request (a cost
        # bench-web shows); nothing here exports traces.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    ctx = ctx if ctx is not None else open_context()
    setattr(app.state, STATE_KEY, ctx)
    setattr(app.state, WRITERS_KEY, make_writers(ctx))
    setattr(app.state, dashboard.THROTTLE_KEY, Throttle())
    setattr(app.state, dashboard.PREFECT_KEY, prefect_ui.PrefectDirectory(ctx.config))
    app.add_middleware(guard.Guard)

    @app.exception_handler(RecordError)
    async def _bad_record(request: Request, exc: RecordError) -> JSONResponse:
        status = 403 if isinstance(exc, Refused) else 409 if isinstance(exc, Conflict) else 422
        return JSONResponse({"detail": str(exc)}, status_code=status)

    @app.exception_handler(StoreRefused)
    async def _not_stored(request: Request, exc: StoreRefused) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=422)

    @app.exception_handler(StoreUnavailable)
    async def _unavailable(request: Request, exc: StoreUnavailable) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=503, headers={"Retry-After": "5"})

    async def _database_busy(request: Request, exc: Exception) -> JSONResponse:
        # a locked SQLite file (a long tick holds its write lock) or a lost connection
        return JSONResponse(
            {"detail": "the database is busy or unavailable; try again shortly"},
            status_code=503,
            headers={"Retry-After": "5"},
        )

    for unavailable in failures.UNAVAILABLE:
        app.add_exception_handler(unavailable, _database_busy)

    @app.exception_handler(StudioError)
    async def _studio_refused(request: Request, exc: StudioError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=422)

    @app.exception_handler(guard.BodyTooLarge)
    async def _too_large(request: Request, exc: guard.BodyTooLarge) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=413, headers={"Connection": "close"})

    app.add_exception_handler(site.LinkGone, site.gone)
    app.add_exception_handler(site.ForeignOrigin, site.foreign)
    app.include_router(site.router)
    app.include_router(api.router)
    app.include_router(dashboard.router)
    if ctx.config.graphs.is_dir():  # the studio's pages, read-only, for logged-in authors
        workspace = Workspace(ctx.config.graphs)
        app.include_router(
            studio.studio_router(
                workspace,
                base="/studio",
                read_only=True,
                allowed=dashboard.login_required,
                context=lambda: ctx,
            ),
            prefix="/studio",
        )
    return app


__all__ = ["create_app", "prefect_ui", "serve", "studio"]
