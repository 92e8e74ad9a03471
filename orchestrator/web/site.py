"""What a website and its visitors call: subscriptions, click links, the profile page, sw.js."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from orchestrator.app import visitors
from orchestrator.app.service import Context
from orchestrator.errors import CampaignError
from orchestrator.language.records import RecordError
from orchestrator.push.vapid import load_key
from orchestrator.web.common import (
    HERE,
    context,
    has_api_key,
    json_body,
    now,
    same_origin,
    templates,
    writers,
)

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
        "id": {
            "type": "string",
            "pattern": "^[A-Za-z0-9_.@:+-]{1,128}$",
            "description": "the site's own id for this subscriber: needs `id_hash` (or the API key)",
        },
        "id_hash": {
            "type": "string",
            "pattern": "^[0-9a-f]{64}$",
            "description": "hex HMAC-SHA256(identity key, id), computed by the site's backend",
        },
        "timezone": {"type": "string", "examples": ["Europe/Berlin"]},
        "attributes": {
            "type": "object",
            "description": "without the API key: only the attributes a subscriber may edit",
        },
        "tags": {
            "type": "array",
            "items": {"type": "string", "maxLength": 64},
            "description": "without the API key: only `topic:` tags the campaigns offer",
        },
    },
}
UNSUBSCRIBE_BODY: dict[str, Any] = {
    "type": "object",
    "required": ["endpoint"],
    "properties": {
        "endpoint": {"type": "string"},
        "keys": {
            "type": "object",
            "properties": {"auth": {"type": "string"}},
            "description": "the subscription's auth secret (not needed with the API key)",
        },
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
    responses={
        401: {"description": "a wrong API key"},
        403: {"description": "an id without its proof, or a field only the backend sets"},
        409: {"description": "the endpoint is stored with other keys"},
        422: {"description": "the reason the subscription was refused"},
    },
)
async def subscribe(request: Request) -> JSONResponse:
    """A `PushSubscription` (as `subscription`, or the object itself) with optional id
    (and its `id_hash` proof), timezone, attributes and tags. The same subscription
    again is a no-op (200). With the API key (the site's backend) every field is
    trusted; from a browser, see docs/web.md."""
    ctx = context(request)
    backend = has_api_key(request)
    body = await json_body(request)
    parsed = visitors.parse_subscribe(
        body,
        allowed=ctx.config.push_allowed_origins,
        backend=backend,
        secret=ctx.secret(),
        editable=ctx.config.profile_editable,
        offered_topics=lambda: visitors.topics(ctx),
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
    openapi_extra=_body(UNSUBSCRIBE_BODY),
)
async def unsubscribe(request: Request) -> dict[str, bool]:
    """`{endpoint, keys: {auth}}` (the browser's PushSubscription will do); the site's
    backend (API key) may name the endpoint alone. `removed` is false when nothing
    matched (or the auth secret did not)."""
    backend = has_api_key(request)
    body = await json_body(request)
    removed = await run_in_threadpool(
        visitors.unsubscribe, context(request), body, now=now(), backend=backend
    )
    return {"removed": removed}


@router.get("/c/{token}", tags=["visitors"], summary="Signed click link", response_model=None)
def click(request: Request, token: str, a: str | None = None) -> Response:
    """Records the click against its send (once per send), then redirects to the node's url."""
    if a is not None and (len(a) > 64 or not a.isprintable() or not a.isascii()):
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


class LinkGone(CampaignError):
    """A profile link that is forged, expired, or names someone deleted: answered by `gone`."""


class ForeignOrigin(CampaignError):
    """A profile form posted from another site's page: answered 403, nothing changed."""


def _owner(request: Request, token: str) -> tuple[Context, str]:
    """The context and the subscriber a profile link names; LinkGone when it names nobody.
    A POST must come from one of our own pages (`same_origin`): ForeignOrigin otherwise."""
    if request.method == "POST" and not same_origin(request):
        raise ForeignOrigin(token)
    ctx = context(request)
    sid = visitors.subscriber_of(ctx, token)
    if sid is None:
        raise LinkGone(token)
    return ctx, sid


async def gone(request: Request, exc: Exception) -> Response:
    return _gone()


async def foreign(request: Request, exc: Exception) -> Response:
    return _message("Refused", "This form was sent from another site. Nothing was changed.", 403)


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
    form = await request.form()  # read on the event loop; the rest on a worker thread
    return await run_in_threadpool(_save, request, token, form)


def _save(request: Request, token: str, form: Any) -> Response:
    ctx, sid = _owner(request, token)
    attributes: dict[str, Any] = {}
    for key, value in form.items():
        if str(key).startswith("attr:"):
            attributes[str(key).removeprefix("attr:")] = value if isinstance(value, str) else None
    topics = form.getlist("topic")
    picked = [t for t in topics if isinstance(t, str)] if form.get("topics_shown") else None
    try:
        visitors.update_profile(ctx, sid, attributes=attributes, picked_topics=picked, now=now())
    except RecordError as exc:
        return _profile(request, token, f"Not saved: {exc}")
    except KeyError:
        raise LinkGone(token) from None
    return RedirectResponse(f"/me/{token}?saved=1", status_code=303)


@router.post("/me/{token}/pause", tags=["visitors"], summary="Pause notifications for a week")
def profile_pause(request: Request, token: str) -> Response:
    ctx, sid = _owner(request, token)
    try:
        visitors.pause(ctx, sid, now=now())
    except KeyError:
        raise LinkGone(token) from None
    return RedirectResponse(f"/me/{token}?saved=paused", status_code=303)


@router.post("/me/{token}/resume", tags=["visitors"], summary="End a pause")
def profile_resume(request: Request, token: str) -> Response:
    ctx, sid = _owner(request, token)
    try:
        visitors.resume(ctx, sid, now=now())
    except KeyError:
        raise LinkGone(token) from None
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
    form = await request.form()  # read on the event loop; the rest on a worker thread
    return await run_in_threadpool(_delete, request, token, form.get("confirm") == "yes")


def _delete(request: Request, token: str, confirmed: bool) -> Response:
    ctx, sid = _owner(request, token)
    if not confirmed:
        return _profile(request, token, "Tick the box to confirm the deletion.")
    visitors.forget(ctx, sid, now=now())
    return _message(
        "Deleted",
        "Your data is deleted and you will get no more notifications from us. "
        "To hear from us again, subscribe again on the site.",
    )
