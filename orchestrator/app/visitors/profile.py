"""The subscriber's own page: who a profile link names, revoking links, their export,
editing what they own, pausing, and deleting everything about them."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Any

from orchestrator.app import tokens
from orchestrator.app.service import FROM_PROFILE, Context
from orchestrator.app.visitors.common import (
    MAX_EDITABLE_CHARS,
    PAUSE_DAYS,
    TOPIC_PREFIX,
    own_attributes,
    own_topics,
    profile_url,
    topics,
)
from orchestrator.language.records import EventRecord, RecordError, check_subscriber_id, check_text
from orchestrator.store import repo


def subscriber_of(ctx: Context, token: str) -> str | None:
    """The subscriber a profile token names, if it is valid, unexpired, of their current
    link version (not revoked) and they still exist."""
    found = tokens.verify_profile(ctx.secret(), token, now=time.time())
    if found is None:
        return None
    sid, version = found
    with ctx.session() as s:
        row = repo.subscriber(s, sid)
        ok = row is not None and row.status != "deleted" and row.token_version == version
        return sid if ok else None


def revoke_links(ctx: Context, sid: str, *, now: datetime) -> str:
    """Revoke every profile link of a subscriber (raise their link version); the new link.
    Raises KeyError for an unknown or deleted subscriber."""
    check_subscriber_id(sid)
    with ctx.session() as s, s.begin():
        row = repo.subscriber(s, sid)
        if row is None or row.status == "deleted":
            raise KeyError(sid)
        version = row.token_version + 1
        repo.update_subscriber(s, sid, token_version=version, updated_at=now)
    return profile_url(ctx, sid, now=now, version=version)


def export(ctx: Context, sid: str) -> dict[str, Any]:
    """Everything stored about a subscriber, as JSON (the profile page's export)."""
    with ctx.session() as s:
        found = repo.everything_about(s, sid)
        if found is None:
            raise KeyError(sid)
        (row,) = found["subscriber"]
        subs, events, journeys = found["subscriptions"], found["events"], found["journeys"]
        sends = found["sends"]
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
        row = repo.subscriber(s, sid)
        if row is None or row.status == "deleted":  # deleted meanwhile: nothing is written
            raise KeyError(sid)
        tags = list(row.tags)
        if picked_topics is not None:
            tags = list(own_topics(tags, (TOPIC_PREFIX + t for t in sorted(set(picked_topics)))))
        repo.update_subscriber(
            s,
            sid,
            attributes=own_attributes(row.attributes, attributes),
            tags=tags,
            updated_at=now,
        )
        repo.wake_many(s, {sid: now})  # branches and exits see the change at the next tick


def pause(ctx: Context, sid: str, *, now: datetime, days: int = PAUSE_DAYS) -> datetime:
    """Pause for `days`; KeyError when the subscriber is gone (deleted meanwhile)."""
    until = now + timedelta(days=days)
    with ctx.session() as s, s.begin():
        if not repo.update_living(s, sid, paused_until=until, updated_at=now):
            raise KeyError(sid)
        repo.add_events(s, [EventRecord(sid, "paused", now, {"days": days})])
    return until


def resume(ctx: Context, sid: str, *, now: datetime) -> None:
    """End a pause; KeyError when the subscriber is gone (deleted meanwhile)."""
    with ctx.session() as s, s.begin():
        if not repo.update_living(s, sid, paused_until=None, updated_at=now):
            raise KeyError(sid)
        repo.wake_many(s, {sid: now})


def forget(ctx: Context, sid: str, *, now: datetime) -> None:
    """Delete everything about a subscriber; their journeys end (reason `unsubscribed`) at once.

    The row stays as a tombstone (status `deleted`, no attributes, tags or
    subscriptions) so an old import line or event cannot bring them back
    silently; events, notification contents and subscriptions are deleted. A
    subscriber who was active leaves one event: their opt-out (source `profile`),
    which names nobody the tombstone does not."""
    with ctx.session() as s, s.begin():
        left = repo.deactivate(s, [sid], status="deleted", now=now)
        if not left and repo.subscriber_status(s, [sid]).get(sid, "deleted") == "deleted":
            return  # deleted already (two forms at once): the first did it all
        repo.erase(s, sid, now=now)
        repo.note_opt_outs(s, left, source=FROM_PROFILE, at=now)
