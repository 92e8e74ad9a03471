"""The notification JSON that the service worker (`/sw.js`) shows.

One function builds it for sending and for the validator's worst-case size
bound, so the two can never disagree about what is in a payload.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from orchestrator.errors import PayloadTooLargeError, TemplateRenderError
from orchestrator.language import templates
from orchestrator.language.spec import Campaign, NotificationNode

# RFC 8291 with one aes128gcm record of 4,096 bytes: 86 bytes of header, 16 of tag, 1 of padding.
MAX_PLAINTEXT_BYTES = 3993
# Room kept for the signed click link (public base URL + token) in `data`.
MAX_CLICK_URL = 256

TEMPLATED_FIELDS = ("title", "body", "url", "icon", "image", "badge", "tag")


def render_fields(
    node: NotificationNode, context: dict[str, Any], *, strict: bool = True
) -> dict[str, str]:
    """Render every templated field of a notification node; absent fields are left out.

    A template that reads only `campaign` and `node` renders the same for every send of
    the node: it is rendered once (per campaign title, node id and strictness)."""
    out: dict[str, str] = {}
    for field in TEMPLATED_FIELDS:
        source = getattr(node.notification, field)
        if source is None:
            continue
        if templates.names_used(source) <= _SAME_FOR_EVERY_SEND:
            campaign, node_id = context["campaign"], context["node"]["id"]
            out[field] = _render_once(source, campaign["id"], campaign["title"], node_id, strict)
        else:
            out[field] = templates.render(source, context, strict=strict)
    return out


_SAME_FOR_EVERY_SEND = frozenset({"campaign", "node"})


@lru_cache(maxsize=4096)
def _render_once(source: str, campaign: str, title: str, node_id: str, strict: bool) -> str:
    context = {"campaign": {"id": campaign, "title": title}, "node": {"id": node_id}}
    return templates.render(source, context, strict=strict)


def names_used(node: NotificationNode) -> frozenset[str]:
    """The top-level names the node's templates read (so a send whose templates never read
    `subscriber` needs no attributes fetched)."""
    used: frozenset[str] = frozenset()
    for field in TEMPLATED_FIELDS:
        source = getattr(node.notification, field)
        if source is not None:
            used |= templates.names_used(source)
    return used


def build(
    node: NotificationNode,
    rendered: dict[str, str],
    *,
    click_url: str,
    send_id: str,
    timestamp_ms: int | None = None,
) -> bytes:
    """The payload bytes; raises PayloadTooLargeError over the Web Push record limit."""
    raw = encode(node, rendered, click_url=click_url, send_id=send_id, timestamp_ms=timestamp_ms)
    if len(raw) > MAX_PLAINTEXT_BYTES:
        raise PayloadTooLargeError(
            f"notification payload is {len(raw):,} bytes; Web Push allows {MAX_PLAINTEXT_BYTES:,}"
        )
    return raw


def encode(
    node: NotificationNode,
    rendered: dict[str, str],
    *,
    click_url: str,
    send_id: str,
    timestamp_ms: int | None = None,
) -> bytes:
    """The payload bytes, without the size check."""
    n = node.notification
    body: dict[str, Any] = {"title": rendered["title"]}
    for field in ("body", "icon", "image", "badge", "tag"):
        if rendered.get(field):
            body[field] = rendered[field]
    if n.require_interaction:
        body["requireInteraction"] = True
    if n.silent:
        body["silent"] = True
    if n.actions:
        body["actions"] = [
            {"action": a.action, "title": a.title, **({"icon": a.icon} if a.icon else {})}
            for a in n.actions
        ]
    body["data"] = {"url": click_url, "send": send_id}
    if timestamp_ms is not None:
        body["timestamp"] = timestamp_ms
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def send_context(
    campaign: Campaign,
    node_id: str,
    *,
    subscriber_id: str,
    attributes: dict[str, Any],
    tags: list[str],
    timezone: str,
    trigger: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """What a send's templates read: `subscriber`, `campaign`, `node` and, for a journey
    started by an event, `trigger` (`{event, properties, at}`)."""
    context: dict[str, Any] = {
        "subscriber": {
            "id": subscriber_id,
            "attributes": attributes,
            "tags": tags,
            "timezone": timezone,
        },
        "campaign": {"id": campaign.campaign, "title": campaign.title},
        "node": {"id": node_id},
    }
    if trigger is not None:
        context["trigger"] = trigger
    return context


def worst_case_context(campaign: Campaign, node_id: str, *, triggered: bool) -> dict[str, Any]:
    """Template context with the longest values known ahead of time.

    Attributes and trigger properties are unknown: they render empty (or their
    `default(...)`), and are checked again at send time.
    """
    context: dict[str, Any] = {
        "subscriber": {
            "id": "x" * templates.MAX_SUBSCRIBER_ID,
            "timezone": "x" * templates.MAX_TIMEZONE,
        },
        "campaign": {"id": campaign.campaign, "title": campaign.title},
        "node": {"id": node_id},
    }
    if triggered:
        context["trigger"] = {"event": "x" * templates.MAX_EVENT_NAME}
    return context


def worst_case_size(campaign: Campaign, node_id: str, *, triggered: bool) -> int:
    """Upper bound (as far as known) of the payload size of one notification node."""
    node = campaign.node(node_id)
    assert isinstance(node, NotificationNode)
    context = worst_case_context(campaign, node_id, triggered=triggered)
    try:
        rendered = render_fields(node, context, strict=False)
    except TemplateRenderError:
        return 0  # reported by the template check
    raw = encode(
        node, rendered, click_url="x" * MAX_CLICK_URL, send_id="x" * 40, timestamp_ms=10**13
    )
    return len(raw)
