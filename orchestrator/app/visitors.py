"""What a website and its visitors do: subscribe, unsubscribe, click, and look after their profile.

The HTTP layer (`orchestrator.web`) is a thin edge over these functions; they
validate with `orchestrator.language.records`, so a record is judged the same way
whichever door it came through. Every change is one transaction.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col

from orchestrator.app import tokens
from orchestrator.app.service import Context
from orchestrator.language import records, urls
from orchestrator.language.records import (
    EventRecord,
    PushSubscriptionRecord,
    RecordError,
    SubscriberRecord,
    check_attributes,
    check_subscriber_id,
    check_tags,
    check_text,
    check_timezone,
    parse_subscription,
)
from orchestrator.language.spec import TagRule
from orchestrator.store import repo
from orchestrator.store.models import (
    Event,
    Journey,
    PushSubscription,
    Send,
    Subscriber,
)

SUBSCRIBE_FIELDS = {
    "id",
    "id_hash",
    "subscription",
    "timezone",
    "attributes",
    "tags",
    "endpoint",
    "keys",
    "expirationTime",
}
PAUSE_DAYS = 7
TOPIC_PREFIX = "topic:"
MAX_EDITABLE_CHARS = 200
ANONYMOUS_PREFIX = "v_"  # ids the service mints for browsers that subscribe anonymously


class Refused(RecordError):
    """The caller may not do this (answered 403): a site id without its proof, or a field
    only the site's backend may set."""


class Conflict(RecordError):
    """The endpoint is stored with other keys (answered 409): only the browser holding
    the subscription, or the site's backend, may change it."""


@dataclass(frozen=True)
class Subscribed:
    id: str
    created: bool
    profile_url: str


def profile_url(ctx: Context, subscriber_id: str, *, now: datetime, version: int = 0) -> str:
    expires = int((now + timedelta(days=tokens.PROFILE_DAYS)).timestamp())
    token = tokens.sign_profile(ctx.secret(), subscriber_id, expires=expires, version=version)
    return f"{ctx.config.public_url}/me/{token}"


@dataclass(frozen=True)
class SubscribeRequest:
    """A validated `POST /api/subscriptions` body, and who sent it.

    `backend`: the request carried the API key (the site's backend): every field is
    trusted. Otherwise it comes from a browser: `id` only with its proof (checked by
    `parse_subscribe`), attributes only the ones a subscriber may edit on their own
    profile (merged into the stored ones), tags only `topic:` tags the campaigns offer
    (replacing the stored topics, other tags kept)."""

    subscription: PushSubscriptionRecord
    id: str | None = None
    timezone: str | None = None
    attributes: dict[str, Any] | None = None
    tags: tuple[str, ...] | None = None
    backend: bool = False


def parse_subscribe(
    body: Any,
    *,
    allowed: tuple[str, ...],
    backend: bool = False,
    secret: str = "",
    editable: tuple[str, ...] = (),
    offered_topics: Callable[[], list[str]] = lambda: [],
) -> SubscribeRequest:
    """Check a subscribe body: a PushSubscription (as `subscription`, or the object itself)
    with optional id (and its `id_hash` proof), timezone, attributes and tags.
    Raises RecordError (422) saying what is wrong, Refused (403) for what only the
    site's backend may do."""
    if not isinstance(body, dict):
        raise RecordError("expected a JSON object")
    unknown = set(body) - SUBSCRIBE_FIELDS
    if unknown:
        shown = ", ".join(sorted(str(k)[:40] for k in unknown)[:10])
        raise RecordError(f"unknown field(s): {shown}")
    raw_sub = body.get("subscription", body if "endpoint" in body else None)
    if raw_sub is None:
        raise RecordError("subscription: missing (a PushSubscription: endpoint and keys)")
    if raw_sub is body:
        raw_sub = {k: body[k] for k in ("endpoint", "keys", "expirationTime") if k in body}
    where = "subscription" if "subscription" in body else "body"
    subscription = parse_subscription(raw_sub, allowed=allowed, where=where)
    sid = check_subscriber_id(body["id"]) if "id" in body else None
    if "id_hash" in body and sid is None:
        raise RecordError("id_hash: given without the id it proves")
    if sid is not None and not backend and not tokens.proof_valid(secret, sid, body.get("id_hash")):
        raise Refused(
            "id: choosing the subscriber id needs proof: id_hash = HMAC-SHA256(identity key, id), "
            "computed by the site's backend (`campaign subscribers identity-key`), or the API key"
        )
    attributes = check_attributes(body["attributes"]) if "attributes" in body else None
    if attributes is not None and not backend:
        for key, value in attributes.items():
            if key not in editable:
                may = ", ".join(editable) or "none"
                raise Refused(
                    f"attributes.{key[:40]}: only the site's backend (API key) sets it; a "
                    f"visitor may set: {may}"
                )
            if not isinstance(value, str) or len(value) > MAX_EDITABLE_CHARS:
                raise RecordError(
                    f"attributes.{key}: expected text of at most {MAX_EDITABLE_CHARS} characters"
                )
    tags = check_tags(body["tags"]) if "tags" in body else None
    if tags and not backend:
        offered = {TOPIC_PREFIX + t for t in offered_topics()}
        for i, tag in enumerate(tags):
            if tag not in offered:
                topics_shown = ", ".join(sorted(offered)) or "none"
                raise Refused(
                    f"tags[{i}]: only the site's backend (API key) sets tags; a visitor may "
                    f"pick topics: {topics_shown}"
                )
    return SubscribeRequest(
        subscription=subscription,
        id=sid,
        timezone=check_timezone(body["timezone"]) if "timezone" in body else None,
        attributes=attributes,
        tags=tags,
        backend=backend,
    )


def subscribe(ctx: Context, body: Any, *, now: datetime, backend: bool = True) -> Subscribed:
    """Store one browser's PushSubscription; see `subscribe_many`."""
    request = parse_subscribe(
        body,
        allowed=ctx.config.push_allowed_origins,
        backend=backend,
        secret=ctx.secret(),
        editable=ctx.config.profile_editable,
        offered_topics=lambda: topics(ctx),
    )
    (result,) = subscribe_many(ctx, [request], now=now)
    if isinstance(result, RecordError):
        raise result
    return result


def subscribe_many(
    ctx: Context, requests: list[SubscribeRequest], *, now: datetime
) -> list[Subscribed | RecordError]:
    """Store subscriptions in one transaction, in order (the web service's group commit);
    a request that may not be carried out gets its error in its place.

    Idempotent: the same subscription again changes nothing and names the same
    subscriber. Without an `id`, an endpoint seen before keeps its subscriber — when
    the keys are the same (the same browser) — and a new one gets a fresh id; the
    same endpoint with other keys is a Conflict unless the backend sends it."""
    results: list[Subscribed | RecordError] = []
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
) -> list[Subscribed | RecordError]:
    if not requests:
        return []
    known = repo.known_subscriptions(s, (r.subscription.endpoint for r in requests))
    sids: list[str | RecordError] = []
    for r in requests:
        stored = known.get(r.subscription.endpoint)
        same_browser = stored is not None and _same_keys(stored[2:], r.subscription)
        if stored is not None and not same_browser and not r.backend:
            sids.append(
                Conflict(
                    "subscription: this endpoint is stored with other keys; only the browser "
                    "that holds it (same keys) or the site's backend may change it"
                )
            )
        else:
            sids.append(
                r.id or (stored[1] if stored else f"{ANONYMOUS_PREFIX}{secrets.token_hex(8)}")
            )
    ids = [sid for sid in sids if isinstance(sid, str)]
    current = {
        row.id: row
        for row in s.execute(
            select(
                col(Subscriber.id),
                col(Subscriber.timezone),
                col(Subscriber.attributes),
                col(Subscriber.tags),
                col(Subscriber.status),
                col(Subscriber.token_version),
            ).where(col(Subscriber.id).in_(ids))
        )
    }
    records, fresh_ids, revived = [], [], []
    moved: dict[str, str] = {}  # an anonymous id whose browser is now linked -> the id
    out: list[Subscribed | RecordError] = []
    for r, sid in zip(requests, sids, strict=True):
        if isinstance(sid, RecordError):
            out.append(sid)
            continue
        cur = current.get(sid)
        records.append(
            SubscriberRecord(
                id=sid,
                timezone=r.timezone or (cur.timezone if cur else "UTC"),
                attributes=_attributes(r, dict(cur.attributes) if cur else {}),
                tags=_tag_list(r, tuple(cur.tags) if cur else ()),
                subscriptions=(r.subscription,),
            )
        )
        stored = known.get(r.subscription.endpoint)
        fresh = stored is None or stored[1] != sid
        if stored is not None and stored[1] != sid and stored[1].startswith(ANONYMOUS_PREFIX):
            moved[stored[1]] = sid
        if cur is not None and cur.status != "active":
            revived.append(sid)
            fresh = True
        if fresh:
            fresh_ids.append(sid)
        version = cur.token_version if cur else 0
        out.append(Subscribed(sid, fresh, profile_url(ctx, sid, now=now, version=version)))
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
    for anonymous, into in moved.items():
        _merge_anonymous(ctx, s, anonymous, into, now=now)
    return out


def _retire(s: Any, sid: str, *, status: str, now: datetime) -> None:
    """The subscriber row stays as a tombstone (`deleted`, `merged`): no attributes, tags
    or pause, every profile link made before revoked; their journeys end at once."""
    s.execute(
        update(Subscriber)
        .where(col(Subscriber.id) == sid)
        .values(
            status=status,
            attributes={},
            tags=[],
            paused_until=None,
            updated_at=now,
            token_version=Subscriber.token_version + 1,
        )
    )
    repo.wake_many(s, {sid: now})


def _merge_anonymous(ctx: Context, s: Any, anonymous: str, into: str, *, now: datetime) -> None:
    """A browser that subscribed anonymously is now linked to a site's id: once the
    anonymous subscriber has no subscription left, what they set themselves (editable
    attributes, topics) fills in what the linked subscriber lacks, their events move
    over, and the anonymous id is retired (`merged`: no attributes, its profile links
    revoked, its journeys end)."""
    if s.execute(
        select(col(PushSubscription.id)).where(col(PushSubscription.subscriber_id) == anonymous)
    ).first():
        return  # another browser of theirs is still subscribed under that id
    old = s.get(Subscriber, anonymous)
    new = s.get(Subscriber, into)
    if old is None or new is None or old.status == "deleted":
        return
    editable = set(ctx.config.profile_editable)
    attributes = {
        **{k: v for k, v in old.attributes.items() if k in editable},
        **new.attributes,
    }
    topics = [t for t in old.tags if t.startswith(TOPIC_PREFIX) and t not in new.tags]
    s.execute(
        update(Subscriber)
        .where(col(Subscriber.id) == into)
        .values(attributes=attributes, tags=[*new.tags, *topics], updated_at=now)
    )
    taken = select(col(Event.client_id)).where(
        col(Event.subscriber_id) == into, col(Event.client_id).is_not(None)
    )
    s.execute(
        update(Event)
        .where(
            col(Event.subscriber_id) == anonymous,
            col(Event.client_id).is_(None) | col(Event.client_id).not_in(taken),
        )
        .values(subscriber_id=into)
    )
    _retire(s, anonymous, status="merged", now=now)


def _same_secret(given: str, stored: str) -> bool:
    try:
        return records.b64_equal(given, stored)
    except ValueError:
        return False


def _same_keys(stored: tuple[str, str], given: PushSubscriptionRecord) -> bool:
    """Whether stored keys are the given ones (compared as bytes: the stored text may be
    in another base64 form)."""
    try:
        return records.b64_equal(stored[0], given.p256dh) and records.b64_equal(
            stored[1], given.auth
        )
    except ValueError:
        return False


def _attributes(r: SubscribeRequest, stored: dict[str, Any]) -> dict[str, Any]:
    """The backend's attributes replace the stored ones; a visitor's are merged in."""
    if r.attributes is None:
        return stored
    return r.attributes if r.backend else own_attributes(stored, r.attributes)


def _tag_list(r: SubscribeRequest, stored: tuple[str, ...]) -> tuple[str, ...]:
    """The backend's tags replace the stored ones; a visitor's topics replace the stored
    topics only."""
    if r.tags is None:
        return stored
    return r.tags if r.backend else own_topics(stored, r.tags)


def own_attributes(stored: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """What a subscriber sets themselves (their browser, their profile page) merged into
    the stored attributes: a text is kept trimmed, an empty one removes the attribute."""
    merged = dict(stored)
    for key, value in given.items():
        if str(value).strip():
            merged[key] = str(value).strip()
        else:
            merged.pop(key, None)
    return merged


def own_topics(stored: Iterable[str], picked: Iterable[str]) -> tuple[str, ...]:
    """The picked `topic:` tags in place of the stored topics; other tags kept."""
    kept = [t for t in stored if not t.startswith(TOPIC_PREFIX)]
    return (*kept, *dict.fromkeys(picked))


def unsubscribe(ctx: Context, body: Any, *, now: datetime, backend: bool = False) -> bool:
    """The browser unsubscribed: forget the endpoint; a subscriber left with none is unsubscribed.

    `body` is `{endpoint, keys: {auth}}` (the browser's PushSubscription will do): the
    auth secret proves the caller holds the subscription. The site's backend (`backend`)
    may name the endpoint alone. A wrong or missing proof removes nothing."""
    if not isinstance(body, dict):
        raise RecordError("expected a JSON object with the subscription's endpoint and keys.auth")
    raw = body.get("subscription", body)
    if not isinstance(raw, dict):
        raise RecordError("subscription: expected an object with endpoint and keys.auth")
    endpoint = raw.get("endpoint")
    if not isinstance(endpoint, str) or not endpoint:
        raise RecordError("endpoint: expected the subscription's endpoint URL")
    try:
        endpoint = urls.normalise(endpoint, what="endpoint")
    except urls.UrlError as exc:
        raise RecordError(f"endpoint: {exc}") from None
    keys = raw.get("keys")
    auth = keys.get("auth") if isinstance(keys, dict) else None
    if not backend:
        check_text(auth, "keys.auth", max_chars=64, what="the subscription's auth secret")
    with ctx.session() as s, s.begin():
        row = s.execute(
            select(col(PushSubscription.subscriber_id), col(PushSubscription.auth)).where(
                col(PushSubscription.endpoint) == endpoint
            )
        ).first()
        if row is None:
            return False
        owner, stored_auth = row
        if not backend and not _same_secret(str(auth), stored_auth):
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
        except IntegrityError:  # the same link opened twice at once: one click is stored
            if attempt == 2:
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
        subscriber = s.get(Subscriber, send.subscriber_id)
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


# ------------------------------------------------------------------ the subscriber's own page


def subscriber_of(ctx: Context, token: str) -> str | None:
    """The subscriber a profile token names, if it is valid, unexpired, of their current
    link version (not revoked) and they still exist."""
    found = tokens.verify_profile(ctx.secret(), token, now=time.time())
    if found is None:
        return None
    sid, version = found
    with ctx.session() as s:
        row = s.get(Subscriber, sid)
        ok = row is not None and row.status != "deleted" and row.token_version == version
        return sid if ok else None


def revoke_links(ctx: Context, sid: str, *, now: datetime) -> str:
    """Revoke every profile link of a subscriber (raise their link version); the new link.
    Raises KeyError for an unknown or deleted subscriber."""
    check_subscriber_id(sid)
    with ctx.session() as s, s.begin():
        row = s.get(Subscriber, sid)
        if row is None or row.status == "deleted":
            raise KeyError(sid)
        version = row.token_version + 1
        s.execute(
            update(Subscriber)
            .where(col(Subscriber.id) == sid)
            .values(token_version=version, updated_at=now)
        )
    return profile_url(ctx, sid, now=now, version=version)


def topics(ctx: Context) -> list[str]:
    """Topics a subscriber can pick: the `topic:` tags the campaigns' segment rules look at."""
    from orchestrator.language import loader

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
        raise RecordError(f"not editable here: {', '.join(k[:40] for k in refused[:10])}")
    for key, value in attributes.items():
        check_text(value, key[:40], max_chars=MAX_EDITABLE_CHARS, what="text")
    offered = set(topics(ctx))
    if picked_topics is not None:
        unknown = sorted(set(picked_topics) - offered)
        if unknown:
            raise RecordError(f"unknown topic(s): {', '.join(t[:40] for t in unknown[:10])}")
    with ctx.session() as s, s.begin():
        row = s.get(Subscriber, sid)
        if row is None or row.status == "deleted":  # deleted meanwhile: nothing is written
            raise KeyError(sid)
        tags = list(row.tags)
        if picked_topics is not None:
            tags = list(own_topics(tags, (TOPIC_PREFIX + t for t in sorted(set(picked_topics)))))
        s.execute(
            update(Subscriber)
            .where(col(Subscriber.id) == sid)
            .values(
                attributes=own_attributes(row.attributes, attributes), tags=tags, updated_at=now
            )
        )
        repo.wake_many(s, {sid: now})  # branches and exits see the change at the next tick


def pause(ctx: Context, sid: str, *, now: datetime, days: int = PAUSE_DAYS) -> datetime:
    """Pause for `days`; KeyError when the subscriber is gone (deleted meanwhile)."""
    until = now + timedelta(days=days)
    with ctx.session() as s, s.begin():
        _change_living(s, sid, paused_until=until, updated_at=now)
        repo.add_events(s, [EventRecord(sid, "paused", now, {"days": days})])
    return until


def resume(ctx: Context, sid: str, *, now: datetime) -> None:
    """End a pause; KeyError when the subscriber is gone (deleted meanwhile)."""
    with ctx.session() as s, s.begin():
        _change_living(s, sid, paused_until=None, updated_at=now)
        repo.wake_many(s, {sid: now})


def _change_living(s: Any, sid: str, **values: Any) -> None:
    """Update a subscriber who has not deleted their data; KeyError otherwise."""
    changed = s.execute(
        update(Subscriber)
        .where(col(Subscriber.id) == sid, col(Subscriber.status) != "deleted")
        .values(**values)
    )
    if changed.rowcount != 1:
        raise KeyError(sid)


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
        _retire(s, sid, status="deleted", now=now)
