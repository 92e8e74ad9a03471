"""What a website and its visitors do: subscribe, unsubscribe, click, and look after their profile.

The HTTP layer (`orchestrator.web`) is a thin edge over these functions; they
validate with `orchestrator.records`, so a record is judged the same way
whichever door it came through. Every change is one transaction.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlmodel import col

from orchestrator import tokens
from orchestrator.records import (
    EventRecord,
    PushSubscriptionRecord,
    RecordError,
    SubscriberRecord,
    check_subscriber_id,
    check_timezone,
    parse_subscription,
)
from orchestrator.service import Context
from orchestrator.spec import TagRule
from orchestrator.store import repo
from orchestrator.store.models import (
    Event,
    Journey,
    PushSubscription,
    Send,
    Subscriber,
)

SUBSCRIBE_FIELDS = {"id", "subscription", "timezone", "attributes", "tags", "endpoint", "keys"}
PAUSE_DAYS = 7
TOPIC_PREFIX = "topic:"


@dataclass(frozen=True)
class Subscribed:
    id: str
    created: bool
    profile_url: str


def profile_url(ctx: Context, subscriber_id: str, *, now: datetime) -> str:
    expires = int((now + timedelta(days=tokens.PROFILE_DAYS)).timestamp())
    token = tokens.sign_profile(ctx.secret(), subscriber_id, expires=expires)
    return f"{ctx.config.public_url}/me/{token}"


@dataclass(frozen=True)
class SubscribeRequest:
    """A validated `POST /api/subscriptions` body."""

    subscription: PushSubscriptionRecord
    id: str | None = None
    timezone: str | None = None
    attributes: dict[str, Any] | None = None
    tags: tuple[str, ...] | None = None


def parse_subscribe(body: Any, *, allowed: tuple[str, ...]) -> SubscribeRequest:
    """Check a subscribe body: a PushSubscription (as `subscription`, or the object itself)
    with optional id, timezone, attributes and tags. Raises RecordError saying what is wrong."""
    if not isinstance(body, dict):
        raise RecordError("expected a JSON object")
    unknown = set(body) - SUBSCRIBE_FIELDS - {"expirationTime"}
    if unknown:
        raise RecordError(f"unknown field(s): {', '.join(sorted(unknown))}")
    raw_sub = body.get("subscription", body if "endpoint" in body else None)
    if raw_sub is None:
        raise RecordError("subscription: missing (a PushSubscription: endpoint and keys)")
    if raw_sub is body:
        raw_sub = {k: body[k] for k in ("endpoint", "keys", "expirationTime") if k in body}
    where = "subscription" if "subscription" in body else "body"
    subscription = parse_subscription(raw_sub, allowed=allowed, where=where)
    attributes = body.get("attributes")
    if attributes is not None and (
        not isinstance(attributes, dict) or not all(isinstance(k, str) for k in attributes)
    ):
        raise RecordError("attributes: expected an object")
    if attributes is not None and len(repr(attributes)) > 16_384:
        raise RecordError("attributes: larger than 16,384 bytes")
    tags = body.get("tags")
    if tags is not None and (
        not isinstance(tags, list) or not all(isinstance(t, str) and 0 < len(t) <= 64 for t in tags)
    ):
        raise RecordError("tags: expected a list of short texts")
    return SubscribeRequest(
        subscription=subscription,
        id=check_subscriber_id(body["id"]) if "id" in body else None,
        timezone=check_timezone(body["timezone"]) if "timezone" in body else None,
        attributes=dict(attributes) if attributes is not None else None,
        tags=tuple(dict.fromkeys(tags)) if tags is not None else None,
    )


def subscribe(ctx: Context, body: Any, *, now: datetime) -> Subscribed:
    """Store one browser's PushSubscription; see `subscribe_many`."""
    (result,) = subscribe_many(
        ctx, [parse_subscribe(body, allowed=ctx.config.push_allowed_origins)], now=now
    )
    return result


def subscribe_many(
    ctx: Context, requests: list[SubscribeRequest], *, now: datetime
) -> list[Subscribed]:
    """Store subscriptions in one transaction, in order (the web service's group commit).

    Idempotent: the same endpoint again changes nothing and names the same
    subscriber. Without an `id`, an endpoint seen before keeps its subscriber
    and a new one gets a fresh id. Attributes, tags and timezone, when given,
    replace the stored ones; left out, they are kept."""
    results: list[Subscribed] = []
    ctx.secret()  # read (or create) it before this transaction takes the write lock
    with ctx.session() as s, s.begin():
        pending: list[SubscribeRequest] = []
        for request in requests:
            clash = any(
                p.subscription.endpoint == request.subscription.endpoint
                or (p.id is not None and p.id == request.id)
                for p in pending
            )
            if clash:  # a later request about the same subscriber sees the earlier one stored
                results += _store_subscriptions(ctx, s, pending, now=now)
                pending = []
            pending.append(request)
        results += _store_subscriptions(ctx, s, pending, now=now)
    return results


def _store_subscriptions(
    ctx: Context, s: Any, requests: list[SubscribeRequest], *, now: datetime
) -> list[Subscribed]:
    if not requests:
        return []
    known = repo.known_subscriptions(s, (r.subscription.endpoint for r in requests))
    owners = {endpoint: row[1] for endpoint, row in known.items()}
    sids = [
        r.id or owners.get(r.subscription.endpoint) or f"v_{secrets.token_hex(8)}" for r in requests
    ]
    current = {
        row.id: row
        for row in s.execute(
            select(
                col(Subscriber.id),
                col(Subscriber.timezone),
                col(Subscriber.attributes),
                col(Subscriber.tags),
                col(Subscriber.status),
            ).where(col(Subscriber.id).in_(sids))
        )
    }
    records, fresh_ids, revived = [], [], []
    out = []
    for r, sid in zip(requests, sids, strict=True):
        cur = current.get(sid)
        records.append(
            SubscriberRecord(
                id=sid,
                timezone=r.timezone or (cur.timezone if cur else "UTC"),
                attributes=r.attributes
                if r.attributes is not None
                else (dict(cur.attributes) if cur else {}),
                tags=r.tags if r.tags is not None else (tuple(cur.tags) if cur else ()),
                subscriptions=(r.subscription,),
            )
        )
        fresh = owners.get(r.subscription.endpoint) != sid
        if cur is not None and cur.status != "active":
            revived.append(sid)
            fresh = True
        if fresh:
            fresh_ids.append(sid)
        out.append(Subscribed(sid, fresh, profile_url(ctx, sid, now=now)))
    existing = {sid: (c.timezone, c.attributes, c.tags) for sid, c in current.items()}
    repo.upsert_subscribers(s, records, existing=existing, known=known)
    if revived:
        s.execute(
            update(Subscriber)
            .where(col(Subscriber.id).in_(revived))
            .values(status="active", paused_until=None, updated_at=now)
        )
    if fresh_ids:
        repo.note_events(s, [EventRecord(sid, "subscribed", now, {}) for sid in fresh_ids])
    return out


def unsubscribe(ctx: Context, endpoint: Any, *, now: datetime) -> bool:
    """The browser unsubscribed: forget the endpoint; a subscriber left with none is unsubscribed."""
    if not isinstance(endpoint, str) or not endpoint or len(endpoint) > 2048:
        raise RecordError("endpoint: expected the subscription's endpoint URL")
    with ctx.session() as s, s.begin():
        owner = s.execute(
            select(col(PushSubscription.subscriber_id)).where(
                col(PushSubscription.endpoint) == endpoint
            )
        ).scalar_one_or_none()
        if owner is None:
            return False
        repo.delete_subscriptions(s, [endpoint])
        left = s.execute(
            select(col(PushSubscription.id)).where(col(PushSubscription.subscriber_id) == owner)
        ).first()
        if left is None:
            s.execute(
                update(Subscriber)
                .where(col(Subscriber.id) == owner)
                .values(status="unsubscribed", updated_at=now)
            )
            repo.add_events(s, [EventRecord(owner, "unsubscribed", now, {})])
    return True


def click(ctx: Context, token: str, *, action: str | None, now: datetime) -> str | None:
    """Record the click of a signed link; where it leads, or None for a bad token (nothing stored).

    The destination comes from the campaign (the send's rendered url, or the url of
    one of the node's actions), never from the request: no open redirect."""
    send_id = tokens.verify(ctx.secret(), "click", token)
    if send_id is None:
        return None
    with ctx.session() as s, s.begin():
        send = s.get(Send, send_id)
        if send is None:
            return None
        target = send.target_url
        if action:
            journey = s.get(Journey, send.journey_id)
            node = None
            if journey is not None:
                campaign = ctx.campaign_of_version(journey.version_id, s)
                node = campaign.all_nodes().get(send.node)
            notification = getattr(node, "notification", None)
            for a in getattr(notification, "actions", []):
                if a.action == action and a.url:
                    target = a.url
        properties: dict[str, Any] = {"campaign": send.campaign, "node": send.node}
        if action:
            properties["action"] = action[:64]
        repo.add_events(
            s, [EventRecord(send.subscriber_id, "click", now, properties, send_id=send_id)]
        )
    return target or f"{ctx.config.public_url}/thanks"


# ------------------------------------------------------------------ the subscriber's own page


def subscriber_of(ctx: Context, token: str) -> str | None:
    """The subscriber a profile token names, if it is valid, unexpired and they still exist."""
    sid = tokens.verify_profile(ctx.secret(), token, now=time.time())
    if sid is None:
        return None
    with ctx.session() as s:
        row = s.get(Subscriber, sid)
        return sid if row is not None and row.status != "deleted" else None


def topics(ctx: Context) -> list[str]:
    """Topics a subscriber can pick: the `topic:` tags the campaigns' segment rules look at."""
    from orchestrator import loader

    found: set[str] = set()
    for path in loader.campaign_files([ctx.config.graphs]):
        try:
            loaded = loader.load_unchanged(path)
        except Exception:  # an unreadable file has no topics; `campaign validate` says why
            continue
        if loaded.campaign is None:
            continue
        for segment in loaded.campaign.segments.values():
            found.update(_tags(segment.match))
    return sorted(t.removeprefix(TOPIC_PREFIX) for t in found if t.startswith(TOPIC_PREFIX))


def _tags(rule: Any) -> set[str]:
    if isinstance(rule, TagRule):
        return {rule.tag}
    out: set[str] = set()
    for name in ("all", "any"):
        for child in getattr(rule, name, None) or []:
            out |= _tags(child)
    inner = getattr(rule, "not_", None) or getattr(rule, "negate", None)
    if inner is not None:
        out |= _tags(inner)
    return out


def export(ctx: Context, sid: str) -> dict[str, Any]:
    """Everything stored about a subscriber, as JSON (the profile page's export)."""
    with ctx.session() as s:
        row = s.get(Subscriber, sid)
        if row is None:
            raise KeyError(sid)
        subs = s.execute(
            select(PushSubscription).where(col(PushSubscription.subscriber_id) == sid)
        ).scalars()
        events = s.execute(
            select(Event).where(col(Event.subscriber_id) == sid).order_by(col(Event.at))
        ).scalars()
        journeys = s.execute(
            select(Journey).where(col(Journey.subscriber_id) == sid).order_by(col(Journey.id))
        ).scalars()
        sends = s.execute(
            select(Send).where(col(Send.subscriber_id) == sid).order_by(col(Send.id))
        ).scalars()
        return {
            "id": row.id,
            "status": row.status,
            "timezone": row.timezone,
            "attributes": row.attributes,
            "tags": row.tags,
            "paused_until": _iso(row.paused_until),
            "created_at": _iso(row.created_at),
            "subscriptions": [
                {"endpoint": p.endpoint, "created_at": _iso(p.created_at)} for p in subs
            ],
            "events": [
                {"name": e.name, "at": _iso(e.at), "properties": e.properties} for e in events
            ],
            "journeys": [
                {
                    "campaign": j.campaign,
                    "subcampaign": j.subcampaign,
                    "node": j.node,
                    "phase": j.phase,
                    "entered_at": _iso(j.entered_at),
                    "ended_at": _iso(j.ended_at),
                    "exit_reason": j.exit_reason,
                }
                for j in journeys
            ],
            "notifications": [
                {
                    "campaign": x.campaign,
                    "node": x.node,
                    "at": _iso(x.claimed_at),
                    "outcome": x.outcome,
                    "content": x.payload,
                }
                for x in sends
            ],
        }


def _iso(moment: datetime | None) -> str | None:
    value = repo.aware(moment)
    return value.isoformat() if value else None


def update_profile(
    ctx: Context,
    sid: str,
    *,
    attributes: dict[str, Any],
    picked_topics: list[str] | None,
    now: datetime,
) -> None:
    """Correct the attributes the subscriber owns (CAMPAIGN_PROFILE_EDITABLE) and pick topics."""
    editable = set(ctx.config.profile_editable)
    refused = sorted(set(attributes) - editable)
    if refused:
        raise RecordError(f"not editable here: {', '.join(refused)}")
    for key, value in attributes.items():
        if not isinstance(value, str) or len(value) > 200:
            raise RecordError(f"{key}: expected text of at most 200 characters")
    offered = set(topics(ctx))
    if picked_topics is not None:
        unknown = sorted(set(picked_topics) - offered)
        if unknown:
            raise RecordError(f"unknown topic(s): {', '.join(unknown)}")
    with ctx.session() as s, s.begin():
        row = s.get(Subscriber, sid)
        if row is None:
            raise KeyError(sid)
        merged = dict(row.attributes)
        for key, value in attributes.items():
            if value.strip():
                merged[key] = value.strip()
            else:
                merged.pop(key, None)
        tags = list(row.tags)
        if picked_topics is not None:
            tags = [t for t in tags if not t.startswith(TOPIC_PREFIX)]
            tags += [TOPIC_PREFIX + t for t in sorted(set(picked_topics))]
        s.execute(
            update(Subscriber)
            .where(col(Subscriber.id) == sid)
            .values(attributes=merged, tags=tags, updated_at=now)
        )
        repo.wake_many(s, {sid: now})  # branches and exits see the change at the next tick


def pause(ctx: Context, sid: str, *, now: datetime, days: int = PAUSE_DAYS) -> datetime:
    until = now + timedelta(days=days)
    with ctx.session() as s, s.begin():
        s.execute(
            update(Subscriber)
            .where(col(Subscriber.id) == sid)
            .values(paused_until=until, updated_at=now)
        )
        repo.add_events(s, [EventRecord(sid, "paused", now, {"days": days})])
    return until


def resume(ctx: Context, sid: str, *, now: datetime) -> None:
    with ctx.session() as s, s.begin():
        s.execute(
            update(Subscriber)
            .where(col(Subscriber.id) == sid)
            .values(paused_until=None, updated_at=now)
        )
        repo.wake_many(s, {sid: now})


def forget(ctx: Context, sid: str, *, now: datetime) -> None:
    """Delete everything about a subscriber; their journeys end (reason `unsubscribed`) at once.

    The row stays as a tombstone (status `deleted`, no attributes, tags or
    subscriptions) so an old import line or event cannot bring them back
    silently; events, notification contents and subscriptions are deleted."""
    with ctx.session() as s, s.begin():
        s.execute(delete(PushSubscription).where(col(PushSubscription.subscriber_id) == sid))
        s.execute(delete(Event).where(col(Event.subscriber_id) == sid))
        s.execute(
            update(Send).where(col(Send.subscriber_id) == sid).values(payload=None, target_url=None)
        )
        s.execute(
            update(Subscriber)
            .where(col(Subscriber.id) == sid)
            .values(status="deleted", attributes={}, tags=[], paused_until=None, updated_at=now)
        )
        repo.wake_many(s, {sid: now})
