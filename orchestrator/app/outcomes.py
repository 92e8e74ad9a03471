"""What happens after a push service answers: the ledger, subscriptions and journeys.

- delivered: done.
- gone (404/410): the subscription is deleted; an active subscriber left without any
  becomes `unreachable`, with one opt-out (source `push_service`) in the same
  transaction; the subscriber's journeys are woken so those without any subscription
  left end (`subscription_gone`) at once.
- rate_limited (429), failed (5xx or network, after the client's own retries),
  vapid_rejected (401/403): the send is kept for a later tick (`retry`, with
  `retry_at`), the very same message with the same Topic, up to MAX_ATTEMPTS; then
  it is `failed`.
- payload_error (413), rejected (400 and other 4xx), disallowed (an endpoint
  not in normal form or not on an allowed origin), error (an unexpected exception
  for this send: recorded `failed`, the exception in `detail`), and a send that
  finally failed: the journey does not go on as if it had been sent: it takes its
  no-convert edge at once, the reason recorded.

A claimed send whose process died before its outcome was written has `retry_at`
= claim time + CLAIM_GRACE, so a later tick sends it again the same way, up to
MAX_ATTEMPTS in all: a send found due with its attempts spent is `failed` ("gave
up after N attempts") and never sent again.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from orchestrator import engine
from orchestrator.app import journeys
from orchestrator.app.service import FROM_PUSH_SERVICE, Context
from orchestrator.delivery import Outcome, SendOutcome, SendRequest, Target, describe
from orchestrator.engine import Action
from orchestrator.language.spec import NotificationNode
from orchestrator.store import repo
from orchestrator.store.db import Row, Session
from orchestrator.store.models import Journey, Send

MAX_ATTEMPTS = 5
CLAIM_GRACE = timedelta(minutes=10)
RETRY_BASE = timedelta(minutes=2)
RETRY_CAP = timedelta(hours=1)
TRANSIENT = frozenset({Outcome.RATE_LIMITED, Outcome.FAILED, Outcome.VAPID_REJECTED})
PERMANENT = frozenset({Outcome.PAYLOAD_ERROR, Outcome.REJECTED, Outcome.DISALLOWED, Outcome.ERROR})
# permanent outcomes recorded under another name, and the reason their journeys are given
_LEDGER = {Outcome.ERROR: Outcome.FAILED}
_REASON = {Outcome.ERROR: "delivery_error"}

log = logging.getLogger("campaign.tick")


@dataclass
class ResendResult:
    sends: int
    outcomes: Counter[str]


def backoff(attempts: int) -> timedelta:
    delay: timedelta = RETRY_BASE * (2 ** max(attempts - 1, 0))
    return min(delay, RETRY_CAP)


def record(
    ctx: Context,
    *,
    campaign: str,
    requests: Sequence[SendRequest],
    outcomes: Sequence[SendOutcome],
    attempts: dict[int, int],
    now: datetime,
) -> Counter[str]:
    """Write outcomes in one statement; returns the final outcome per send as counted."""
    by_id = {r.send_id: r for r in requests}
    counts: Counter[tuple[str, str]] = Counter()
    tally: Counter[str] = Counter()
    rows: list[dict[str, Any]] = []
    abandon: list[tuple[int, str]] = []
    for o in outcomes:
        outcome, retry_at = o.outcome, None
        if o.outcome in TRANSIENT:
            if attempts.get(o.send_id, 1) < MAX_ATTEMPTS:
                outcome, retry_at = Outcome.RETRY, now + backoff(attempts.get(o.send_id, 1))
            else:
                outcome = Outcome.FAILED
                abandon.append((o.send_id, f"delivery_{o.outcome}"))
        elif o.outcome in PERMANENT:
            outcome = _LEDGER.get(o.outcome, o.outcome)
            abandon.append((o.send_id, _REASON.get(o.outcome, o.outcome)))
        rows.append(
            {
                "id": o.send_id,
                "outcome": outcome,
                "status_code": o.status_code,
                "detail": o.detail[:1024] if o.detail else None,
                "finished_at": None if outcome == Outcome.RETRY else now,
                "retry_at": retry_at,
            }
        )
        counts[(by_id[o.send_id].node, outcome)] += 1
        tally[outcome] += 1
    gone = [e for o in outcomes for e in o.gone_endpoints]
    with ctx.session() as s, s.begin():
        repo.update_by_id(s, Send, rows)
        if gone:
            left = repo.prune_subscriptions(s, gone, now=now)
            repo.note_opt_outs(s, left, source=FROM_PUSH_SERVICE, at=now)
            repo.wake_many(
                s, {by_id[o.send_id].subscriber_id: now for o in outcomes if o.gone_endpoints}
            )
        if abandon:
            _abandon(ctx, s, abandon, now=now, counts=counts)
        repo.bump(s, campaign=campaign, counts=counts)
    return tally


def _abandon(
    ctx: Context,
    s: Session,
    sends: list[tuple[int, str]],
    *,
    now: datetime,
    counts: Counter[tuple[str, str]],
) -> None:
    """Journeys still waiting on a send that will never arrive take their no-convert edge now."""
    reasons = dict(sends)
    rows = repo.journeys_awaiting(s, reasons)
    subs = repo.subscribers(s, (r.subscriber_id for r in rows))
    updates = []
    woken: list[tuple[str, frozenset[str], dict[str, Any]]] = []
    trace: list[tuple[Row[Any], list[Action]]] = []
    for row in rows:
        try:
            campaign = ctx.campaign_of_version(row.version_id, s)
            if not isinstance(campaign.node(row.node), NotificationNode):
                continue
            view = journeys.subscriber_view(subs.get(row.subscriber_id), row.subscriber_id, None)
            result = engine.abandon_send(
                journeys.state_of(row),
                campaign=campaign,
                subscriber=view,
                reason=reasons[row.last_send_id],
                now=now,
            )
        except Exception as exc:  # this journey ends; the others' outcomes are still written
            updates.append(journeys.end_with_error(row, exc, now=now, counts=counts, trace=trace))
            continue
        journeys.count(list(result.actions), counts)
        trace.append((row, list(result.actions)))
        updates.append({"id": row.id, **journeys.changes(result.state)})
        woken.append((row.subscriber_id, engine.wake_names(campaign), updates[-1]))
    names = frozenset().union(*(wanted for _, wanted, _ in woken))
    later = journeys.later_events(s, {sid for sid, _, _ in woken}, names=names, now=now)
    journeys.wake_for_later_events(woken, later)
    journeys.record_split_entries(s, lambda r: ctx.campaign_of_version(r.version_id, s), trace)
    repo.update_by_id(s, Journey, updates)
    if rows:
        journeys.audit_rows(ctx, rows[0].campaign, trace)


def resend_due(
    ctx: Context, *, campaign: str, now: datetime, limit: int = 500
) -> ResendResult | None:
    """Send again, unchanged, the sends that are due for a retry or were left unfinished;
    those whose MAX_ATTEMPTS are spent are `failed` instead, without being sent."""
    with ctx.session() as s, s.begin():
        rows = repo.claim_retries(s, campaign=campaign, now=now, limit=limit)
        if not rows:
            return None
        # a spent send keeps its count; every row is held for the grace, so that no other
        # tick takes it before its outcome is written
        attempts = {
            r.id: r.attempts if r.attempts >= MAX_ATTEMPTS else r.attempts + 1 for r in rows
        }
        repo.update_by_id(
            s,
            Send,
            [{"id": r.id, "attempts": attempts[r.id], "retry_at": now + CLAIM_GRACE} for r in rows],
        )
        requests, broken = _requests(ctx, s, [r for r in rows if r.attempts < MAX_ATTEMPTS])
    # what is known without sending: spent, no stored payload, or a send that can't be rebuilt
    decided: list[SendOutcome] = []
    sending = {q.send_id for q in requests}
    for r in rows:
        if r.attempts >= MAX_ATTEMPTS:
            detail = f"gave up after {r.attempts} attempts"
            decided.append(SendOutcome(r.id, Outcome.FAILED, None, detail))
        elif r.id in broken:
            decided.append(SendOutcome(r.id, Outcome.ERROR, None, broken[r.id]))
        elif r.id not in sending:
            decided.append(SendOutcome(r.id, Outcome.REJECTED, None, "no stored payload"))
    tally: Counter[str] = Counter()
    if decided:
        by_id = {r.id: r for r in rows}
        tally = record(
            ctx,
            campaign=campaign,
            requests=[_stub(by_id[o.send_id]) for o in decided],
            outcomes=decided,
            attempts=attempts,
            now=now,
        )
    if requests:
        tally.update(
            record(
                ctx,
                campaign=campaign,
                requests=requests,
                outcomes=ctx.delivery.deliver(requests),
                attempts=attempts,
                now=now,
            )
        )
    return ResendResult(sends=len(rows), outcomes=tally)


def _requests(
    ctx: Context, s: Session, rows: Sequence[Row[Any]]
) -> tuple[list[SendRequest], dict[int, str]]:
    """The requests to send again, and why each send that could not be rebuilt could not
    (its journey or campaign version no longer knows its node, …)."""
    by_journey = repo.journeys_by_id(s, (r.journey_id for r in rows))
    targets = repo.subscriptions_of(s, (r.subscriber_id for r in rows))
    out = []
    broken: dict[int, str] = {}
    for r in rows:
        journey = by_journey.get(r.journey_id)
        if r.payload is None or journey is None:
            continue
        try:
            campaign = ctx.campaign_of_version(journey.version_id, s)
            node = campaign.node(r.node)
            assert isinstance(node, NotificationNode), f"{r.node} is not a notification"
            request = SendRequest(
                send_id=r.id,
                journey_id=r.journey_id,
                step=r.step,
                campaign=r.campaign,
                node=r.node,
                subscriber_id=r.subscriber_id,
                payload=r.payload.encode(),
                targets=tuple(
                    Target(t.endpoint, t.p256dh, t.auth) for t in targets.get(r.subscriber_id, [])
                ),
                ttl=node.ttl if node.ttl is not None else campaign.settings.ttl,
                urgency=node.urgency or campaign.settings.urgency,
                topic=journeys.topic_for(r.journey_id, r.step),
            )
        except Exception as exc:  # this send only
            log.warning("send %s cannot be sent again: %s", r.id, describe(exc))
            broken[r.id] = describe(exc)
            continue
        out.append(request)
    return out, broken


def _stub(row: Row[Any]) -> SendRequest:
    return SendRequest(
        send_id=row.id,
        journey_id=row.journey_id,
        step=row.step,
        campaign=row.campaign,
        node=row.node,
        subscriber_id=row.subscriber_id,
        payload=b"",
        targets=(),
        ttl=timedelta(0),
        urgency="normal",
        topic=journeys.topic_for(row.journey_id, row.step),
    )
