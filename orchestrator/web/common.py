"""Shared pieces of the web edge: the context, templates, JSON bodies, bearer and session checks."""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import HTTPException, Request
from jinja2 import Environment, FileSystemLoader, select_autoescape

from orchestrator.records import RecordError, loads
from orchestrator.service import Context
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
    from orchestrator import visitors
    from orchestrator.service import add_event_batches

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

    Browsers send `Origin` with every cross-site POST (and `Sec-Fetch-Site`); a request
    naming another origin is refused. One with neither header is not from a browser
    page, so it cannot be a cross-site forgery, and is let through."""
    if request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
        return False
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
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        return f"{parts.scheme}://{parts.netloc}".lower()
    except ValueError:
        return ""


# ------------------------------------------------------------------ dashboard sessions


def passwords(ctx: Context) -> list[str]:
    """The dashboard password; never the API key (a leaked key must not open the dashboard)."""
    return [ctx.config.dashboard_password] if ctx.config.dashboard_password else []


def session_cookie(ctx: Context, *, at: float | None = None) -> str:
    expires = int((at or time.time()) + SESSION_HOURS * 3600)
    mac = hmac.new(ctx.secret().encode(), f"admin:{expires}".encode(), hashlib.sha256)
    return f"{expires}.{mac.hexdigest()}"


def session_valid(ctx: Context, value: str | None) -> bool:
    if not value or "." not in value:
        return False
    expires, _, mac = value.partition(".")
    if not expires.isdigit() or int(expires) < time.time():
        return False
    expected = hmac.new(ctx.secret().encode(), f"admin:{expires}".encode(), hashlib.sha256)
    return hmac.compare_digest(mac, expected.hexdigest())
