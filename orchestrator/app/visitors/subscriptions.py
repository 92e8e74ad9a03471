"""Subscribing and unsubscribing: a browser's PushSubscription in (from the browser itself
or the site's backend, singly or in a group commit), out with the proof that the caller
holds it; an anonymous browser later linked to a site's id is merged into it."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from orchestrator.app import tokens
from orchestrator.app.service import FROM_API, Context
from orchestrator.app.visitors.common import (
    ANONYMOUS_PREFIX,
    MAX_EDITABLE_CHARS,
    SUBSCRIBE_FIELDS,
    TOPIC_PREFIX,
    Conflict,
    Refused,
    Subscribed,
    own_attributes,
    own_topics,
    profile_url,
    topics,
)
from orchestrator.language import records, urls
from orchestrator.language.records import (
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
from orchestrator.store import repo
from orchestrator.store.db import Session


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
    same endpoint with other keys is a Conflict unless the backend sends it.

    A subscriber who is new, or back from `unsubscribed`, `unreachable` or `deleted`,
    gets an opt-in (source `api`); one already active (another browser, an imported subscriber) gets
    none. An anonymous browser linked to a new id brings its opt-in along instead."""
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
    ctx: Context, s: Session, requests: list[SubscribeRequest], *, now: datetime
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
    current = repo.subscriber_rows(s, ids)
    records, revived, added = [], [], []
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
        if cur is None:
            added.append(sid)
        elif cur.status != "active":
            revived.append(sid)
            fresh = True
        version = cur.token_version if cur else 0
        out.append(Subscribed(sid, fresh, profile_url(ctx, sid, now=now, version=version)))
    existing = {sid: (c.timezone, c.attributes, c.tags) for sid, c in current.items()}
    repo.upsert_subscribers(s, records, existing=existing, known=known)
    opted_in = dict.fromkeys(added)  # an id may come twice (two browsers of one subscriber)
    if revived:
        opted_in.update(dict.fromkeys(repo.revive(s, revived, now=now)))
    for anonymous, into in moved.items():
        if _merge_anonymous(ctx, s, anonymous, into, now=now, opting_in=into in opted_in):
            opted_in.pop(into, None)  # the anonymous browser's opt-in is theirs now
    repo.note_opt_ins(s, opted_in, source=FROM_API, at=now)
    return out


def _merge_anonymous(
    ctx: Context, s: Session, anonymous: str, into: str, *, now: datetime, opting_in: bool
) -> bool:
    """A browser that subscribed anonymously is now linked to a site's id: once the
    anonymous subscriber has no subscription left, what they set themselves (editable
    attributes, topics) fills in what the linked subscriber lacks, their events move
    over, and the anonymous id is retired (`merged`: no attributes, its profile links
    revoked, its journeys end). Whether it was merged.

    Their opt-ins and opt-outs move over only when `into` is `opting_in` (new, or
    back, with this request): the anonymous opt-in stands for theirs. A subscriber
    already active keeps their own, and the anonymous ones are deleted: one opt-in
    per subscriber."""
    if repo.has_subscription(s, anonymous):
        return False  # another browser of theirs is still subscribed under that id
    old = repo.subscriber(s, anonymous)
    new = repo.subscriber(s, into)
    if old is None or new is None or old.status == "deleted":
        return False
    editable = set(ctx.config.profile_editable)
    attributes = {
        **{k: v for k, v in old.attributes.items() if k in editable},
        **new.attributes,
    }
    topics = [t for t in old.tags if t.startswith(TOPIC_PREFIX) and t not in new.tags]
    repo.update_subscriber(
        s, into, attributes=attributes, tags=[*new.tags, *topics], updated_at=now
    )
    dropping = () if opting_in else (repo.OPTED_IN, repo.OPTED_OUT)
    repo.move_events(s, source=anonymous, into=into, dropping=dropping)
    repo.retire(s, anonymous, status="merged", now=now)
    return True


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


def unsubscribe(ctx: Context, body: Any, *, now: datetime, backend: bool = False) -> bool:
    """The browser unsubscribed: forget the endpoint; an active subscriber left with none is
    unsubscribed (their opt-out, source `api`).

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
        row = repo.subscription_owner(s, endpoint)
        if row is None:
            return False
        owner, stored_auth = row
        if not backend and not _same_secret(str(auth), stored_auth):
            return False
        repo.delete_subscriptions(s, [endpoint])
        if not repo.has_subscription(s, owner):
            left = repo.deactivate(s, [owner], status="unsubscribed", now=now)
            repo.note_opt_outs(s, left, source=FROM_API, at=now)
            repo.wake_many(s, {owner: now})  # their journeys end at the next tick
    return True
