"""A click on a notification or one of its action buttons: a signed link, recorded once,
leading where the campaign says (never where the request says)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from orchestrator.app import tokens
from orchestrator.app.service import Context
from orchestrator.language import urls
from orchestrator.language.records import EventRecord
from orchestrator.store import failures, repo
from orchestrator.store.models import Journey, Send


def click(ctx: Context, token: str, *, action: str | None, now: datetime) -> str | None:
    """Record the click of a signed link; where it leads, or None for a bad token (nothing stored).

    The destination comes from the campaign (the send's rendered url, or the url of
    one of the node's actions), never from the request, and is an absolute http(s)
    URL (`urls.click_target`) or the service's own thanks page: no open redirect, no
    `javascript:`. A link records one click however often it is opened: one for the
    notification, one for each of the node's action buttons (the event's client id is
    `click:SEND:ACTION`); an `a` that names no action of the node is the notification."""
    send_id = tokens.verify(ctx.secret(), "click", token)
    if send_id is None:
        return None
    target: str | None = None
    for attempt in (1, 2):
        try:
            target = _record_click(ctx, send_id, action=action, now=now)
            break
        except Exception as exc:  # the same link opened twice at once: one click is stored
            if attempt == 2 or not failures.is_conflict(exc):
                raise
    if target is None:
        return None
    try:
        return urls.click_target(target) if target else f"{ctx.config.public_url}/thanks"
    except urls.UrlError:
        return f"{ctx.config.public_url}/thanks"


def _record_click(ctx: Context, send_id: int, *, action: str | None, now: datetime) -> str | None:
    """Store the click (once per send and action); the stored destination, or None for no
    such send. An action the node does not have counts as the notification itself; a
    subscriber who deleted their data is redirected, and nothing is stored."""
    with ctx.session() as s, s.begin():
        send = s.get(Send, send_id)
        if send is None:
            return None
        target = send.target_url
        chosen = None
        if action:
            journey = s.get(Journey, send.journey_id)
            node = None
            if journey is not None:
                campaign = ctx.campaign_of_version(journey.version_id, s)
                node = campaign.all_nodes().get(send.node)
            notification = getattr(node, "notification", None)
            for a in getattr(notification, "actions", []):
                if a.action == action:
                    chosen = a.action
                    target = a.url or target
        subscriber = repo.subscriber(s, send.subscriber_id)
        if subscriber is None or subscriber.status == "deleted":
            return target or ""
        properties: dict[str, Any] = {"campaign": send.campaign, "node": send.node}
        if chosen:
            properties["action"] = chosen
        repo.add_events(
            s,
            [
                EventRecord(
                    send.subscriber_id,
                    "click",
                    now,
                    properties,
                    send_id=send_id,
                    client_id=f"click:{send_id}:{chosen or ''}",
                )
            ],
        )
    return target or ""
