"""`POST /api/events`: the site's backend reports goal events, triggers and unsubscribes."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from orchestrator.app.service import StoredEvents
from orchestrator.language.records import RecordError, parse_event
from orchestrator.web.common import json_body, now, require_api_key, writers

router = APIRouter()
MAX_EVENTS = 1000

EVENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["subscriber", "name"],
    "properties": {
        "id": {
            "type": "string",
            "pattern": "^[A-Za-z0-9_.@:+-]{1,128}$",
            "description": "your id for this event: sending it again stores it once",
        },
        "subscriber": {"type": "string", "pattern": "^[A-Za-z0-9_.@:+-]{1,128}$"},
        "name": {"type": "string", "examples": ["purchase", "cart_abandoned", "unsubscribe"]},
        "at": {"type": "string", "format": "date-time"},
        "properties": {"type": "object"},
        "send": {"type": "integer", "description": "the send a click or conversion came from"},
    },
    "additionalProperties": False,
}
EVENTS_BODY: dict[str, Any] = {
    "oneOf": [
        EVENT_SCHEMA,
        {"type": "array", "items": EVENT_SCHEMA, "maxItems": MAX_EVENTS},
        {
            "type": "object",
            "required": ["events"],
            "properties": {"events": {"type": "array", "items": EVENT_SCHEMA}},
        },
    ]
}


@router.post(
    "/api/events",
    status_code=202,
    tags=["site backend"],
    summary="Record events: conversions, triggers, unsubscribes",
    dependencies=[Depends(require_api_key)],
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": EVENTS_BODY}},
        }
    },
    responses={
        401: {"description": "missing or wrong API key"},
        422: {"description": "the first problem found; nothing of the request was stored"},
    },
)
async def events(request: Request) -> JSONResponse:
    """One event, a list of events, or `{"events": [...]}` (at most 1,000 per request).

    All or nothing: one bad event (or an unknown subscriber) refuses the whole
    request with its position and reason, and stores nothing. An event with an `id`
    already stored for its subscriber is acknowledged (its stored id, counted as
    `repeated`) and not stored again, so a client may retry safely."""
    body = await json_body(request)
    if isinstance(body, dict) and "events" in body and set(body) == {"events"}:
        items, prefix = body["events"], "events"
    elif isinstance(body, list):
        items, prefix = body, ""
    else:
        items, prefix = [body], None
    if not isinstance(items, list):
        raise RecordError("events: expected a list")
    if not items:
        raise RecordError(f"{prefix or 'body'}: no events")
    if len(items) > MAX_EVENTS:
        raise RecordError(f"{len(items):,} events in one request; at most {MAX_EVENTS:,}")
    moment = now()
    records = []
    for i, raw in enumerate(items):
        try:
            records.append(parse_event(raw, default_at=moment))
        except RecordError as exc:
            where = f"{prefix}[{i}]" if prefix is not None else ""
            raise RecordError(f"{where}.{exc}" if where else str(exc)) from None
    stored: StoredEvents = await writers(request).events.submit(records)
    return JSONResponse(
        {
            "stored": len(stored.ids) - stored.repeated,
            "repeated": stored.repeated,
            "ids": stored.ids,
        },
        status_code=202,
    )
