"""What the studio does with the configured database: what saving would mean for the
journeys in flight (as `campaign migrate --dry-run` counts it), and a test send of one
node's notification to one subscriber, now, outside any journey.

A test send is real Web Push to the subscriber's own subscriptions (the author's, say),
through the same payload rules and delivery as a tick; it has no ledger row and no
journey, and it is written to the audit trail (`CAMPAIGN_AUDIT_LOG`) as a line of type
`test_send`.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

from orchestrator.app.service import Context
from orchestrator.delivery import SendRequest, Target, describe
from orchestrator.errors import PayloadTooLargeError, TemplateRenderError
from orchestrator.language import payload, urls
from orchestrator.language.records import RecordError, check_subscriber_id
from orchestrator.language.spec import Campaign
from orchestrator.store import repo
from orchestrator.studio.checking import notification_node
from orchestrator.studio.preview import Sample
from orchestrator.studio.workspace import StudioError

SHOWN = 50  # nodes listed in the in-flight summary


def in_flight(ctx: Context, campaign: Campaign) -> dict[str, Any]:
    """The campaign's journeys in flight by node, and what `campaign migrate` would do
    with them once this text is saved: move to the same node, or end (`removed_node`)
    where the text has no such node."""
    with ctx.session() as s:
        counts = repo.in_flight_by_node(s, campaign=campaign.campaign)
    nodes = campaign.all_nodes()
    moving = {n: c for n, c in counts.items() if n in nodes}
    ending = {n: c for n, c in counts.items() if n not in nodes}
    return {
        "campaign": campaign.campaign,
        "in_flight": sum(counts.values()),
        "would_move": sum(moving.values()),
        "would_end": sum(ending.values()),
        "ending_at": dict(sorted(ending.items(), key=lambda kv: -kv[1])[:SHOWN]),
    }


def subscriber_sample(ctx: Context, subscriber_id: str) -> Sample:
    """A subscriber of the database as the preview's sample (no trigger event: a triggered
    node's `trigger` reads stay empty, as `campaign validate` judges them)."""
    sid, who, profile = _subscriber(ctx, subscriber_id)
    return Sample(sid, dict(profile.attributes), list(profile.tags), who.timezone)


def _subscriber(ctx: Context, subscriber_id: str) -> tuple[str, Any, Any]:
    try:
        sid = check_subscriber_id(subscriber_id, "subscriber")
    except RecordError as exc:
        raise StudioError(str(exc)) from None
    with ctx.session() as s:
        who = repo.subscribers(s, [sid]).get(sid)
        profile = repo.profiles(s, [sid]).get(sid)
    if who is None or profile is None or who.status != "active":
        raise StudioError(f"subscriber {sid!r}: not an active subscriber of the database")
    return sid, who, profile


def test_send(
    ctx: Context, campaign: Campaign, *, node_id: str, subscriber_id: str, now: datetime
) -> dict[str, Any]:
    """Send `node_id`'s notification, rendered for `subscriber_id`, to their subscriptions."""
    node = notification_node(campaign, node_id)
    sid, who, profile = _subscriber(ctx, subscriber_id)
    with ctx.session() as s:
        subscriptions = repo.subscriptions_of(s, [sid]).get(sid, [])
    if not subscriptions:
        raise StudioError(f"subscriber {sid!r} has no push subscription")
    context = payload.send_context(
        campaign,
        node_id,
        subscriber_id=sid,
        attributes=dict(profile.attributes),
        tags=list(profile.tags),
        timezone=who.timezone,
    )
    try:
        rendered = payload.render_fields(node, context)
        url = rendered.get("url", "")
        target_url = urls.click_target(url) if url.strip() else f"{ctx.config.public_url}/thanks"
        body = payload.build(
            node,
            rendered,
            click_url=target_url,
            send_id="test",
            timestamp_ms=int(now.timestamp() * 1000),
        )
    except (TemplateRenderError, PayloadTooLargeError, urls.UrlError) as exc:
        raise StudioError(f"not sent: {exc}") from None
    settings = campaign.settings
    request = SendRequest(
        send_id=0,
        journey_id=0,
        step=0,
        campaign=campaign.campaign,
        node=node_id,
        subscriber_id=sid,
        payload=body,
        targets=tuple(Target(t.endpoint, t.p256dh, t.auth) for t in subscriptions),
        ttl=node.ttl if node.ttl is not None else settings.ttl,
        urgency=node.urgency or settings.urgency,
        topic=f"test-{secrets.token_hex(8)}",  # never replaces a journey's own message
    )
    try:
        (outcome,) = ctx.delivery.deliver([request])
    except Exception as exc:  # the push client itself failed: say so, nothing to undo
        raise StudioError(f"not sent: {describe(exc)}") from None
    line = {
        "t": now.isoformat(),
        "type": "test_send",
        "campaign": campaign.campaign,
        "node": node_id,
        "subscriber": sid,
        "outcome": str(outcome.outcome),
        "status_code": outcome.status_code,
        "by": "studio",
    }
    if ctx.audit is not None:
        ctx.audit([line])
    return {**line, "detail": outcome.detail, "title": rendered.get("title", "")}
