"""What a website and its visitors call: subscriptions, click links, the profile page, sw.js."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from orchestrator import visitors
from orchestrator.errors import CampaignError
from orchestrator.push.setup import load_key
from orchestrator.records import RecordError
from orchestrator.service import Context
from orchestrator.web.common import HERE, context, json_body, now, templates, writers

router = APIRouter()

SUBSCRIPTION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["endpoint", "keys"],
    "properties": {
        "endpoint": {"type": "string", "format": "uri"},
        "expirationTime": {"type": ["number", "null"]},
        "keys": {
            "type": "object",
            "required": ["p256dh", "auth"],
            "properties": {"p256dh": {"type": "string"}, "auth": {"type": "string"}},
        },
    },
}
SUBSCRIBE_BODY: dict[str, Any] = {
    "type": "object",
    "required": ["subscription"],
    "properties": {
        "subscription": SUBSCRIPTION_SCHEMA,
        "id": {"type": "string", "pattern": "^[A-Za-z0-9_.@:+-]{1,128}$"},
        "timezone": {"type": "string", "examples": ["Europe/Berlin"]},
        "attributes": {"type": "object"},
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 64}},
    },
}


def _body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def _page(name: str, status: int = 200, **values: Any) -> HTMLResponse:
    return HTMLResponse(templates.get_template(name).render(**values), status_code=status)


def _message(heading: str, text: str, status: int = 200) -> HTMLResponse:
    return _page("message.html", status, heading=heading, text=text)


@router.post(
    "/api/subscriptions",
    status_code=201,
    tags=["visitors"],
    summary="Store a browser's push subscription",
    openapi_extra=_body(SUBSCRIBE_BODY),
    responses={422: {"description": "the reason the subscription was refused"}},
)
async def subscribe(request: Request) -> JSONResponse:
    """A `PushSubscription` (as `subscription`, or the object itself) with optional id,
    timezone, attributes and tags. The same endpoint again is a no-op (200)."""
    ctx = context(request)
    parsed = visitors.parse_subscribe(
        await json_body(request), allowed=ctx.config.push_allowed_origins
    )
    result: visitors.Subscribed = await writers(request).subscriptions.submit(parsed)
    return JSONResponse(
        {"id": result.id, "created": result.created, "profile_url": result.profile_url},
        status_code=201 if result.created else 200,
    )


@router.delete(
    "/api/subscriptions",
    tags=["visitors"],
    summary="Forget a subscription (the browser unsubscribed)",
    openapi_extra=_body(
        {
            "type": "object",
            "required": ["endpoint"],
            "properties": {"endpoint": {"type": "string"}},
        }
    ),
)
async def unsubscribe(request: Request) -> dict[str, bool]:
    body = await json_body(request)
    if not isinstance(body, dict):
        raise RecordError("expected a JSON object with the endpoint")
    return {"removed": visitors.unsubscribe(context(request), body.get("endpoint"), now=now())}


@router.get("/c/{token}", tags=["visitors"], summary="Signed click link", response_model=None)
def click(request: Request, token: str, a: str | None = None) -> Response:
    """Records the click against its send, then redirects to the node's url."""
    if a is not None and len(a) > 64:
        a = None
    target = visitors.click(context(request), token, action=a, now=now())
    if target is None:
        return _message(
            "Link not recognised",
            "This link is not valid (it may have been copied incompletely). Nothing was recorded.",
            404,
        )
    return RedirectResponse(target, status_code=303)


@router.get("/thanks", include_in_schema=False)
def thanks() -> HTMLResponse:
    return _message("Thanks", "Thanks for your visit.")


# ------------------------------------------------------------------ scripts


@router.get("/sw.js", tags=["visitors"], summary="The service worker")
def service_worker() -> Response:
    return Response(
        (HERE / "static" / "sw.js").read_text(encoding="utf-8"),
        media_type="text/javascript",
        headers={"Service-Worker-Allowed": "/", "Cache-Control": "no-cache"},
    )


@router.get("/subscribe.js", tags=["visitors"], summary="The snippet a site embeds")
def subscribe_js(request: Request) -> Response:
    try:
        public = load_key(context(request).config).public_key_b64()
    except CampaignError as exc:
        body = f'console.error("campaign-flow: push is not configured: " + {json.dumps(str(exc))});'
        return Response(body, media_type="text/javascript", status_code=503)
    script = (HERE / "static" / "subscribe.js").read_text(encoding="utf-8")
    return Response(
        script.replace("__VAPID_PUBLIC_KEY__", public),
        media_type="text/javascript",
        headers={"Cache-Control": "max-age=300"},
    )


# ------------------------------------------------------------------ the subscriber's own page


def _profile(request: Request, token: str, message: str | None = None) -> HTMLResponse:
    ctx, sid = _owner(request, token)
    data = visitors.export(ctx, sid)
    return _page(
        "profile.html",
        token=token,
        data=data,
        attributes=data["attributes"],
        tags=data["tags"],
        editable=ctx.config.profile_editable,
        topics=visitors.topics(ctx),
        paused_until=data["paused_until"],
        message=message,
    )


class LinkGone(Exception):
    """A profile link that is forged, expired, or names someone deleted: answered by `gone`."""


def _owner(request: Request, token: str) -> tuple[Context, str]:
    """The context and the subscriber a profile link names; LinkGone when it names nobody."""
    ctx = context(request)
    sid = visitors.subscriber_of(ctx, token)
    if sid is None:
        raise LinkGone(token)
    return ctx, sid


async def gone(request: Request, exc: Exception) -> Response:
    return _gone()


def _gone() -> HTMLResponse:
    return _message(
        "Link not valid",
        "This profile link is not valid or has expired. Open the latest link from a notification "
        "or subscribe again.",
        404,
    )


@router.get("/me/{token}", tags=["visitors"], summary="The subscriber's own page")
def profile(request: Request, token: str, saved: str | None = None) -> HTMLResponse:
    messages = {
        "1": "Saved.",
        "paused": "Paused for a week.",
        "resumed": "Notifications are on again.",
    }
    return _profile(request, token, messages.get(saved or ""))


@router.post("/me/{token}", tags=["visitors"], summary="Correct details, pick topics")
async def profile_save(request: Request, token: str) -> Response:
    ctx, sid = _owner(request, token)
    form = await request.form()
    attributes = {
        str(k).removeprefix("attr:"): str(v) for k, v in form.items() if str(k).startswith("attr:")
    }
    picked = [str(t) for t in form.getlist("topic")] if form.get("topics_shown") else None
    try:
        visitors.update_profile(ctx, sid, attributes=attributes, picked_topics=picked, now=now())
    except RecordError as exc:
        return _profile(request, token, f"Not saved: {exc}")
    return RedirectResponse(f"/me/{token}?saved=1", status_code=303)


@router.post("/me/{token}/pause", tags=["visitors"], summary="Pause notifications for a week")
def profile_pause(request: Request, token: str) -> Response:
    ctx, sid = _owner(request, token)
    visitors.pause(ctx, sid, now=now())
    return RedirectResponse(f"/me/{token}?saved=paused", status_code=303)


@router.post("/me/{token}/resume", tags=["visitors"], summary="End a pause")
def profile_resume(request: Request, token: str) -> Response:
    ctx, sid = _owner(request, token)
    visitors.resume(ctx, sid, now=now())
    return RedirectResponse(f"/me/{token}?saved=resumed", status_code=303)


@router.get("/me/{token}/export", tags=["visitors"], summary="Everything stored, as JSON")
def profile_export(request: Request, token: str) -> Response:
    ctx, sid = _owner(request, token)
    return Response(
        json.dumps(visitors.export(ctx, sid), indent=2, ensure_ascii=False),
        media_type="application/json",
        headers={"Content-Disposition": 'attachment; filename="my-notification-data.json"'},
    )


@router.post("/me/{token}/delete", tags=["visitors"], summary="Delete everything")
async def profile_delete(request: Request, token: str) -> Response:
    ctx, sid = _owner(request, token)
    form = await request.form()
    if form.get("confirm") != "yes":
        return _profile(request, token, "Tick the box to confirm the deletion.")
    visitors.forget(ctx, sid, now=now())
    return _message(
        "Deleted",
        "Your data is deleted and you will get no more notifications from us. "
        "To hear from us again, subscribe again on the site.",
    )
