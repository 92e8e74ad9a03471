"""Shared pieces of the web edge: the context, templates, JSON bodies, bearer and session checks."""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fastapi import HTTPException, Request
from jinja2 import Environment, FileSystemLoader, select_autoescape

from orchestrator.app import visitors
from orchestrator.app.service import Context, add_event_batches
from orchestrator.language.records import RecordError, loads
from orchestrator.store import repo
from orchestrator.web import guard
from orchestrator.web.writer import GroupWriter

STATE_KEY = "campaign_context"
HERE = Path(__file__).parent
MAX_BODY = guard.MAX_BODY
SESSION_COOKIE = "campaign_session"
SESSION_HOURS = 12

templates = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


def pct(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.1f}%"


def signed_pct(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:+.1f}%"


def ratio(a: int, b: int) -> float | None:
    return a / b if b else None


templates.globals.update(pct=pct, signed_pct=signed_pct, ratio=ratio)


def context(request: Request) -> Context:
    ctx: Context = getattr(request.app.state, STATE_KEY)
    return ctx


@dataclass
class Writers:
    """One group-commit writer per kind of write, per app."""

    subscriptions: GroupWriter
    events: GroupWriter


WRITERS_KEY = "campaign_writers"


def make_writers(ctx: Context) -> Writers:
    return Writers(
        subscriptions=GroupWriter(lambda batch: visitors.subscribe_many(ctx, batch, now=now())),
        events=GroupWriter(lambda batches: list(add_event_batches(ctx, batches))),
    )


def writers(request: Request) -> Writers:
    found: Writers = getattr(request.app.state, WRITERS_KEY)
    return found


def now() -> datetime:
    return datetime.now(UTC)


async def json_body(request: Request) -> Any:
    """The request's JSON (parsed strictly: `records.loads`), or a 422 that says what is
    wrong with it. The body itself is bounded by `guard.Guard` (413 past MAX_BODY)."""
    raw = await request.body()
    if len(raw) > MAX_BODY:
        raise HTTPException(413, f"body larger than {MAX_BODY:,} bytes")
    if not raw:
        raise RecordError("body: empty (expected JSON)")
    return loads(raw, "body")


def same_secret(given: str, expected: str) -> bool:
    """Constant-time comparison of a secret from a request (any characters) with ours."""
    return hmac.compare_digest(
        given.encode("utf-8", "surrogateescape"), expected.encode("utf-8", "surrogateescape")
    )


def bearer(request: Request) -> str | None:
    """The bearer token of the request, if it carries one."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


def has_api_key(request: Request) -> bool:
    """Whether the request carries the valid API key (the site's backend). A request that
    carries a wrong one is refused with 401, so a typo never passes as a visitor."""
    token = bearer(request)
    if token is None:
        return False
    expected = context(request).config.api_key
    if not expected or not same_secret(token, expected):
        raise HTTPException(
            401,
            "the API key is wrong (or none is configured)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return True


async def require_api_key(request: Request) -> None:
    """Bearer CAMPAIGN_API_KEY; 503 when none is configured, 401 otherwise.

    `async` so FastAPI runs it on the event loop: a plain `def` dependency is sent
    to the thread pool on every request."""
    expected = context(request).config.api_key
    if not expected:
        raise HTTPException(503, "CAMPAIGN_API_KEY is not set: the events API is closed")
    token = bearer(request)
    if token is None or not same_secret(token, expected):
        raise HTTPException(
            401,
            "a valid API key is required (Authorization: Bearer …)",
            headers={"WWW-Authenticate": "Bearer"},
        )


def same_origin(request: Request) -> bool:
    """Whether a state-changing browser request comes from one of our own pages.

    Browsers say where a request comes from in `Sec-Fetch-Site` (a page cannot set it):
    `same-origin` (or `none`, typed by the user) passes, anything else is refused. A
    browser without it is judged by `Origin`, which must be ours; our pages send no
    referrer (`Referrer-Policy: no-referrer`), so their own posts carry `Origin: null`
    there, which cannot be told from a sandboxed foreign page and is refused; without
    `Origin`, a `Referer` must be ours. A request with none of these headers is not from
    a browser page — it cannot be a cross-site forgery — and passes."""
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        return site in ("same-origin", "none")
    origin = request.headers.get("origin")
    if origin is None:
        referer = request.headers.get("referer")
        if referer is None:
            return True
        origin = _origin(referer)
    if origin == "null":
        return False
    ours = {_origin(context(request).config.public_url)}
    host = request.headers.get("host")
    if host:
        ours.add(f"{request.url.scheme}://{host}".lower())
    return origin.lower().rstrip("/") in ours


def _origin(url: str) -> str:
    try:
        parts = urlsplit(url)
        return f"{parts.scheme}://{parts.netloc}".lower()
    except ValueError:
        return ""


# ------------------------------------------------------------------ dashboard sessions


def passwords(ctx: Context) -> list[str]:
    """The dashboard password; never the API key (a leaked key must not open the dashboard)."""
    return [ctx.config.dashboard_password] if ctx.config.dashboard_password else []


EPOCH_KEY = "dashboard_session_epoch"


def session_cookie(ctx: Context, *, at: float | None = None) -> str:
    """A signed session: `EXPIRES.EPOCH.MAC`. The MAC covers the expiry, the sessions'
    epoch (raised by every log-out: all sessions end) and a fingerprint of the password
    (changing it ends all sessions)."""
    expires = int((at or time.time()) + SESSION_HOURS * 3600)
    epoch = _epoch(ctx)
    return f"{expires}.{epoch}.{_session_mac(ctx, expires, epoch)}"


def session_valid(ctx: Context, value: str | None) -> bool:
    if not value or len(value) > 200 or not value.isascii():
        return False
    parts = value.split(".")
    if len(parts) != 3 or not all(p.isdigit() and len(p) <= 20 for p in parts[:2]):
        return False
    expires, epoch = int(parts[0]), int(parts[1])
    if expires < time.time() or not passwords(ctx) or epoch != _epoch(ctx):
        return False
    return hmac.compare_digest(parts[2].encode(), _session_mac(ctx, expires, epoch).encode())


def end_sessions(ctx: Context) -> None:
    """Every session ends (the log-out button: this dashboard has one administrator)."""
    with ctx.session() as s, s.begin():
        repo.put_setting(s, EPOCH_KEY, str(_epoch(ctx) + 1))


def _epoch(ctx: Context) -> int:
    with ctx.session() as s:
        stored = repo.setting(s, EPOCH_KEY)
    return int(stored) if stored and stored.isdigit() else 0


def _session_mac(ctx: Context, expires: int, epoch: int) -> str:
    password = hashlib.sha256("".join(passwords(ctx)).encode("utf-8", "surrogateescape"))
    body = f"admin:{expires}:{epoch}:{password.hexdigest()[:16]}".encode()
    return hmac.new(ctx.secret().encode(), body, hashlib.sha256).hexdigest()
