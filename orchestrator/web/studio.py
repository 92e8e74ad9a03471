"""`campaign studio`: the authoring studio, a local web app over one campaigns folder.

The page (`GET /`) is an editor (CodeMirror 6, bundled in `static/studio.bundle.js`:
no CDN, works offline), the diagnostics list, the flowchart and the notification
preview. Its API, all JSON:

- `GET /api/schema`: the JSON Schema of campaign files (completion and hover);
- `GET /api/files`: the campaign files of the folder;
- `GET /api/file?name=…`: a file's text and version;
- `POST /api/check` `{name, text}`: the unsaved text checked by the real loader
  (`orchestrator.studio.checking`): diagnostics, node positions, the SVG when valid;
- `POST /api/save` `{name, text, version}`: written atomically, exactly as given, if
  the file is still at `version`; 409 with the text on disk otherwise;
- `POST /api/new` `{name}`: a new campaign file from the starter campaign;
- `POST /api/preview` `{name, text, node, sample, subscriber?}`: a node's notification
  rendered for a sample subscriber, or for a subscriber of the database
  (`orchestrator.studio.preview`);
- `POST /api/simulate` `{name, text, subscribers}`: the text simulated, the flowchart
  with its per-node figures (`orchestrator.studio.overlay`);
- `POST /api/in-flight` `{name, text}`: the journeys in flight and what `campaign
  migrate` would do with them once the text is saved (`orchestrator.studio.live`);
- `POST /api/test-send` `{name, text, node, subscriber}`: the node's notification sent
  now to one subscriber's subscriptions, outside any journey.

It listens on 127.0.0.1 unless told otherwise, and then only with a password (HTTP
Basic). Requests must name this server in `Host` (no DNS rebinding), writes must be
JSON (a form or `text/plain` post from another site is refused before it is read) and
come from this origin when the browser says where they come from.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import Any

from anyio import CapacityLimiter, to_thread
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from orchestrator.app.service import Context
from orchestrator.delivery import describe
from orchestrator.language import records, spec, starter
from orchestrator.language.spec import Campaign
from orchestrator.studio import checking, live, overlay, preview
from orchestrator.studio.workspace import SaveConflict, StudioError, Workspace
from orchestrator.web import guard

HERE = Path(__file__).parent
MAX_BODY = 4 * 1_048_576  # a 1 MB text, JSON-escaped
CHECKERS = 2  # checks, previews and simulations running at once; the others wait their turn
log = logging.getLogger("campaign.studio")

LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")


def studio_router(
    workspace: Workspace,
    *,
    base: str = "",
    read_only: bool = False,
    allowed: Callable[[Request], Response | None] = lambda request: None,
    context: Callable[[], Context] | None = None,
) -> APIRouter:
    """The studio's page and API, to mount at `base`. `read_only` leaves out saving, new
    files and simulating (the `campaign serve` mount: nothing written, no long CPU work);
    `allowed` answers a request that may not be served (the dashboard's login);
    `context` opens the configured database (the in-flight summary, test sends)."""
    router = APIRouter(include_in_schema=False)
    simulating = asyncio.Lock()
    limiter = CapacityLimiter(CHECKERS)

    def gate(request: Request) -> None:
        refused = allowed(request)
        if refused is not None:
            raise HTTPException(status_code=401, detail="log in first")

    @router.get("/", response_class=HTMLResponse)
    async def page(request: Request) -> Response:
        refused = allowed(request)
        if refused is not None:
            return refused
        html = (HERE / "templates" / "studio.html").read_text(encoding="utf-8")
        html = html.replace("{{ folder }}", escape(str(workspace.root)))
        html = html.replace("{{ base }}", base).replace("{{ read_only }}", str(read_only).lower())
        return HTMLResponse(
            html,
            headers={
                # notification images and icons are on the campaign's own https hosts
                "Content-Security-Policy": "default-src 'self'; script-src 'self'; "
                "img-src 'self' data: https:; style-src 'self' 'unsafe-inline'; "
                "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
            },
        )

    @router.get("/static/studio.bundle.js")
    async def bundle() -> Response:
        return Response(
            (HERE / "static" / "studio.bundle.js").read_bytes(), media_type="text/javascript"
        )

    @router.get("/api/schema", dependencies=[Depends(gate)])
    async def schema() -> dict[str, Any]:
        return spec.json_schema()  # what completion and hover in the editor read

    @router.get("/api/files", dependencies=[Depends(gate)])
    async def files() -> dict[str, Any]:
        names = await run_in_threadpool(workspace.names)
        return {"folder": str(workspace.root), "files": names}

    @router.get("/api/file", dependencies=[Depends(gate)])
    async def file(name: str) -> dict[str, Any]:
        found = await run_in_threadpool(workspace.read, name)
        return {"name": found.name, "text": found.text, "version": found.version}

    @router.post("/api/check", dependencies=[Depends(gate)])
    async def check(request: Request) -> JSONResponse:
        body = await _json_body(request, ("name", "text"))
        try:
            # the loader bounds its own work (size, nesting, includes, render limits); a
            # thread is never abandoned, and at most CHECKERS run at once
            checked = await to_thread.run_sync(
                checking.check, workspace, body["name"], body["text"], limiter=limiter
            )
        except StudioError:
            raise
        except Exception as exc:  # a bug of ours: the author still gets an answer
            log.exception("checking %s failed", body["name"])
            return JSONResponse(
                checking.unchecked(f"the studio could not check this text ({type(exc).__name__})")
            )
        return JSONResponse(checked.as_dict())

    @router.post("/api/preview", dependencies=[Depends(gate)])
    async def show(request: Request) -> JSONResponse:
        body = await _json_body(request, ("name", "text", "node"))
        sample = _number(body, "sample", default=0, low=0, high=1000)
        chosen = body.get("subscriber")
        if chosen is not None and not isinstance(chosen, str):
            raise StudioError("subscriber: expected a subscriber id")

        def show_one() -> dict[str, Any]:
            person = live.subscriber_sample(database(), chosen) if chosen else None
            return preview.preview(
                workspace,
                body["name"],
                body["text"],
                node_id=body["node"],
                sample=sample,
                person=person,
            )

        answer = await to_thread.run_sync(show_one, limiter=limiter)
        return JSONResponse(answer)

    def database() -> Context:
        if context is None:
            raise StudioError("no database is configured for the studio")
        try:
            return context()
        except StudioError:
            raise
        except Exception as exc:
            raise StudioError(f"the database cannot be opened ({describe(exc)})") from None

    def valid(name: str, text: str) -> Campaign:
        return checking.valid_campaign(workspace, name, text, to="go on")

    @router.post("/api/in-flight", dependencies=[Depends(gate)])
    async def journeys_in_flight(request: Request) -> JSONResponse:
        body = await _json_body(request, ("name", "text"))
        if context is None:
            return JSONResponse({"database": False})

        def count() -> dict[str, Any]:
            return {
                "database": True,
                **live.in_flight(database(), valid(body["name"], body["text"])),
            }

        return JSONResponse(await to_thread.run_sync(count, limiter=limiter))

    if read_only:
        return router

    @router.post("/api/test-send")
    async def test_send(request: Request) -> JSONResponse:
        body = await _json_body(request, ("name", "text", "node", "subscriber"))

        def send() -> dict[str, Any]:
            return live.test_send(
                database(),
                valid(body["name"], body["text"]),
                node_id=body["node"],
                subscriber_id=body["subscriber"],
                now=datetime.now(UTC),
            )

        return JSONResponse(await to_thread.run_sync(send, limiter=limiter))

    @router.post("/api/save")
    async def save(request: Request) -> JSONResponse:
        body = await _json_body(request, ("name", "text", "version"))
        try:
            saved = await run_in_threadpool(
                lambda: workspace.save(body["name"], body["text"], base_version=body["version"])
            )
        except SaveConflict as exc:
            return JSONResponse(
                {"detail": str(exc), "current": exc.current, "version": exc.version},
                status_code=409,
            )
        return JSONResponse({"name": saved.name, "version": saved.version})

    @router.post("/api/new")
    async def new(request: Request) -> JSONResponse:
        body = await _json_body(request, ("name",))
        name = body["name"]
        text = starter.starter(Path(name).stem)
        try:
            saved = await run_in_threadpool(lambda: workspace.save(name, text, base_version=""))
        except SaveConflict:
            raise StudioError(f"{name[:100]} exists already") from None
        return JSONResponse({"name": saved.name, "text": text, "version": saved.version})

    @router.post("/api/simulate")
    async def simulate(request: Request) -> JSONResponse:
        body = await _json_body(request, ("name", "text"))
        count = _number(
            body,
            "subscribers",
            default=overlay.DEFAULT_SUBSCRIBERS,
            low=1,
            high=overlay.MAX_SUBSCRIBERS,
        )
        async with simulating:  # one simulation at a time: it takes both cores
            found = await run_in_threadpool(
                lambda: overlay.simulate_text(
                    workspace, body["name"], body["text"], subscribers=count
                )
            )
        return JSONResponse(found.as_dict())

    return router


def create_studio_app(
    root: Path,
    *,
    password: str | None = None,
    hosts: tuple[str, ...] = LOOPBACK,
    context: Callable[[], Context] | None = None,
) -> FastAPI:
    """The studio over the campaign files under `root`; `password` (HTTP Basic, any user
    name) is required for every request when given. `hosts`: the names requests may give
    in `Host` (the loopback names, or the address the studio listens on)."""
    workspace = Workspace(root)
    app = FastAPI(
        title="campaign-flow studio",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.add_middleware(guard.Guard, max_body=MAX_BODY)

    @app.exception_handler(guard.BodyTooLarge)
    async def _too_large(request: Request, exc: guard.BodyTooLarge) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=413, headers={"Connection": "close"})

    @app.exception_handler(StudioError)
    async def _refused(request: Request, exc: StudioError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=422)

    @app.middleware("http")
    async def _gate(request: Request, call_next: Any) -> Response:
        refusal = _refusal(request, password, hosts)
        if refusal is not None:
            return refusal
        response: Response = await call_next(request)
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["Cache-Control"] = "no-store"
        return response

    app.include_router(studio_router(workspace, context=context))
    return app


def _number(body: dict[str, Any], name: str, *, default: int, low: int, high: int) -> int:
    value = body.get(name, default)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise StudioError(f"{name}: expected a whole number from {low:,} to {high:,}")
    return value


async def _json_body(request: Request, fields: tuple[str, ...]) -> dict[str, Any]:
    """A JSON object whose `fields` are all text (strictly parsed: no NaN, no lone
    surrogates, bounded nesting)."""
    try:
        body = records.loads(await request.body())
    except records.RecordError as exc:
        raise StudioError(str(exc)) from None
    if not isinstance(body, dict):
        raise StudioError("body: expected a JSON object")
    for name in fields:
        value = body.get(name)
        if not isinstance(value, str):
            raise StudioError(f"{name}: expected text")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise StudioError(
                f"{name}: not Unicode text (a lone surrogate at {exc.start})"
            ) from None
    return body


def _refusal(request: Request, password: str | None, hosts: tuple[str, ...]) -> Response | None:
    """Why this request is not served, as the answer; None to serve it."""
    host = (request.headers.get("host") or "").lower()
    hostname = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    if hostname not in hosts:
        # a page of another site reaching us by a name it controls (DNS rebinding)
        return JSONResponse({"detail": "unknown host"}, status_code=421)
    if request.method not in ("GET", "HEAD"):
        kind = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
        if kind != "application/json":
            return JSONResponse({"detail": "expected application/json"}, status_code=415)
        origin = request.headers.get("origin")
        if origin is not None and origin.lower().split("://", 1)[-1] != host:
            return JSONResponse({"detail": "cross-origin request refused"}, status_code=403)
    if password is not None and not _authorised(request, password):
        return Response(
            "the studio needs its password",
            status_code=401,
            headers={"WWW-Authenticate": 'Basic realm="campaign studio", charset="UTF-8"'},
        )
    return None


def _authorised(request: Request, password: str) -> bool:
    header = request.headers.get("authorization") or ""
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or len(value) > 1024:
        return False
    try:
        decoded = base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return False
    given = decoded.partition(":")[2]
    return hmac.compare_digest(given.encode(), password.encode())


__all__ = ["create_studio_app"]
