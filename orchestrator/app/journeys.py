"""Journeys between the database and the engine: row ↔ state, counters, audit lines.

Shared by the tick (`ticking`) and delivery outcomes (`outcomes`).
"""

from __future__ import annotations

import base64
import hashlib
import logging
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from orchestrator.app.service import Context
from orchestrator.delivery import describe
from orchestrator.engine import Action, JourneyState, SubscriberView
from orchestrator.language.spec import Campaign, SplitNode
from orchestrator.store import repo
from orchestrator.store.db import Row, Session

log = logging.getLogger("campaign.tick")

_STATE_FIELDS = (
    "subscriber_id",
    "subcampaign",
    "node",
    "phase",
    "due_at",
    "entered_at",
    "followups",
    "pending_followup",
    "sends",
    "step",
    "last_send_at",
    "last_send_id",
    "arm",
    "holdout",
    "via",
    "exit_reason",
    "ended_at",
    "trigger",
    "seen_until",
)
_TIME_FIELDS = ("due_at", "entered_at", "last_send_at", "ended_at", "seen_until")


def row_values(state: JourneyState) -> dict[str, Any]:
    values = {name: getattr(state, name) for name in _STATE_FIELDS}
    values["claim_at"] = state.due_at
    return values


_FIXED_FIELDS = ("subscriber_id", "subcampaign", "entered_at", "trigger", "holdout")
_CHANGING_FIELDS = tuple(name for name in _STATE_FIELDS if name not in _FIXED_FIELDS)


def changes(state: JourneyState) -> dict[str, Any]:
    """The columns an advance can change (the fixed ones are not written again)."""
    values = {name: getattr(state, name) for name in _CHANGING_FIELDS}
    values["claim_at"] = state.due_at
    return values


def state_of(row: Row[Any]) -> JourneyState:
    values = {name: getattr(row, name) for name in _STATE_FIELDS}
    for name in _TIME_FIELDS:
        moment = values[name]
        if moment is not None and moment.tzinfo is None:
            values[name] = moment.replace(tzinfo=UTC)  # SQLite gives naive UTC back
    return JourneyState.of(values)


def end_with_error(
    row: Row[Any],
    exc: BaseException,
    *,
    now: datetime,
    counts: Counter[tuple[str, str]],
    trace: list[tuple[Row[Any], list[Action]]],
) -> dict[str, Any]:
    """A journey whose advance raised an unexpected exception ends (exit reason `error`),
    logged with the exception; counted and traced like any exit. Returns its row update
    (with `id`), which touches only the columns of an end: the rest of the row may be
    what could not be read."""
    log.error(
        "journey %s of %s (subscriber %s, at %s) ended with an error: %s",
        row.id,
        row.campaign,
        row.subscriber_id,
        row.node,
        describe(exc),
        exc_info=exc,
    )
    action = Action("exit", now, row.node, reason="error")
    count([action], counts)
    trace.append((row, [action]))
    return {
        "id": row.id,
        "phase": "ended",
        "exit_reason": "error",
        "ended_at": now,
        "due_at": None,
        "claim_at": None,
    }


def later_events(
    s: Any, ids: Iterable[str], *, names: frozenset[str], now: datetime
) -> dict[str, list[tuple[str, datetime]]]:
    """These subscribers' events named one of `names` dated after `now`: subscriber ->
    [(name, at)], oldest first."""
    later: dict[str, list[tuple[str, datetime]]] = {}
    if names:
        for event in repo.named_events(s, ids, names=names, since=now):
            at = repo.utc(event.at)
            if at > now:
                later.setdefault(event.subscriber_id, []).append((event.name, at))
    return later


def wake_for_later_events(
    changes: Iterable[tuple[str, frozenset[str], dict[str, Any]]],
    later: dict[str, list[tuple[str, datetime]]],
) -> None:
    """Journeys next claimed after an event they act on that is stored ahead of its time
    (dated after the tick: a population's event in the simulator, a client's clock
    ahead) are claimed at that event's time instead. Storing an event wakes the journeys
    then in flight (`repo.add_events`); this keeps a later advance from losing that.

    `changes`: (subscriber id, the event names the journey acts on, its new column
    values, whose `claim_at` is lowered in place); `later`: as `later_events` gives."""
    for sid, wanted, values in changes:
        claim = values.get("claim_at")
        if claim is None or sid not in later:
            continue
        wake = next((at for name, at in later[sid] if name in wanted), None)
        if wake is not None and wake < claim:
            values["claim_at"] = wake


def topic_for(journey_id: int, step: int) -> str:
    """≤ 32 base64url characters, the same for every retry of one step (RFC 8030 Topic)."""
    digest = hashlib.sha256(f"{journey_id}:{step}".encode()).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")[:32]


def subscriber_view(sub: Row[Any] | None, sid: str, has_sub: Counter[str] | None) -> SubscriberView:
    """What the engine sees of a subscriber (its status as stored: the engine knows what
    each one means)."""
    if sub is None:
        return SubscriberView(id=sid, status="deleted", has_subscription=False)
    return SubscriberView(
        id=sub.id,
        timezone=sub.timezone,
        status=sub.status,
        has_subscription=True if has_sub is None else has_sub.get(sub.id, 0) > 0,
        paused_until=repo.aware(sub.paused_until),
    )


# ------------------------------------------------------------------ counting and audit


def count(actions: list[Action], counts: Counter[tuple[str, str]]) -> None:
    for a in actions:
        if a.type == "enroll":
            counts[(a.node, "entered")] += 1
            if a.holdout:
                counts[(a.node, "holdout")] += 1
        elif a.type == "send":
            counts[(a.node, "sent")] += 1
        elif a.type == "skip":
            counts[(a.node, "skipped")] += 1
        elif a.type in ("convert", "no_convert"):
            counts[(a.node, "converted" if a.type == "convert" else "no_convert")] += 1
            if a.to and a.to != "end":
                counts[(a.to, "entered")] += 1
        elif a.type == "route":
            if a.to and a.to != "end":
                counts[(a.to, "entered")] += 1
            counts[(a.node, f"route:{a.to}")] += 1
        elif a.type == "defer":
            counts[(a.node, "deferred")] += 1
        elif a.type == "exit":
            counts[(a.node, f"exit:{a.reason}")] += 1


SKIP_REASONS = frozenset({"template_error", "bad_url", "payload_too_large"})


def step_summary(actions: Iterable[Action]) -> Counter[str]:
    """What journeys did, for a tick's log line: `converted`, `no_convert`,
    `skipped:REASON` (a send that could not be built), `not_sent:REASON` (one the push
    services refused for good), `deferred:REASON` and `exit:REASON`."""
    out: Counter[str] = Counter()
    for a in actions:
        if a.type == "convert":
            out["converted"] += 1
        elif a.type == "skip":
            out[f"skipped:{a.reason}"] += 1
        elif a.type == "no_convert":
            if a.reason is None:
                out["no_convert"] += 1
            elif a.reason not in SKIP_REASONS:  # a skip's no-convert: counted by its skip
                out[f"not_sent:{a.reason}"] += 1
        elif a.type == "defer":
            out[f"deferred:{a.reason}"] += 1
        elif a.type == "exit":
            out[f"exit:{a.reason}"] += 1
    return out


def trace_line(
    action: Action, *, subscriber: str, campaign: str, subcampaign: str
) -> dict[str, Any]:
    line: dict[str, Any] = {
        "t": action.at.isoformat(),
        "subscriber": subscriber,
        "campaign": campaign,
        "subcampaign": subcampaign,
        "type": action.type,
        "node": action.node,
    }
    if action.to is not None:
        line["to"] = action.to
    if action.reason is not None:
        line["reason"] = action.reason
    if action.until is not None:
        line["until"] = action.until.isoformat()
    if action.step is not None:
        line["step"] = action.step
    if action.timing is not None:
        line["timing"] = action.timing
    if action.type == "enroll" and action.holdout:
        line["holdout"] = True
    return line


def audit(
    ctx: Context, campaign: str, subcampaign: str, trace: list[tuple[str, list[Action]]]
) -> None:
    if ctx.audit is None:
        return
    lines = [
        trace_line(a, subscriber=sid, campaign=campaign, subcampaign=subcampaign)
        for sid, actions in trace
        for a in actions
    ]
    if lines:
        ctx.audit(lines)


def audit_rows(ctx: Context, campaign: str, trace: list[tuple[Row[Any], list[Action]]]) -> None:
    if ctx.audit is None:
        return
    lines = [
        trace_line(a, subscriber=r.subscriber_id, campaign=campaign, subcampaign=r.subcampaign)
        for r, actions in trace
        for a in actions
    ]
    if lines:
        ctx.audit(sorted(lines, key=lambda x: x["t"]))


def horizon(campaign: Campaign) -> timedelta:
    """How long after a journey enters (the campaign, or an arm of a split) a goal event
    still counts as its conversion: the conversion window once per send a journey may make
    (the first and its follow-ups)."""
    return campaign.settings.window * (campaign.settings.followup_cap + 1)


def record_split_entries(
    s: Session,
    campaign_of: Callable[[Row[Any]], Campaign | None],
    trace: list[tuple[Row[Any], list[Action]]],
) -> None:
    """Store each route a split node took in `trace` as the journey's entry into that arm
    (`split_entry`), with the horizon its goal events count in."""
    entries = []
    splits: dict[int, frozenset[str]] = {}  # by campaign object: its split node ids
    for row, actions in trace:
        campaign = None
        for a in actions:
            if a.type != "route" or a.to is None:
                continue
            campaign = campaign or campaign_of(row)
            if campaign is None:
                continue
            if id(campaign) not in splits:
                splits[id(campaign)] = frozenset(
                    n for n, node in campaign.all_nodes().items() if isinstance(node, SplitNode)
                )
            if a.node not in splits[id(campaign)]:
                continue
            entries.append(
                {
                    "journey_id": row.id,
                    "campaign": row.campaign,
                    "split": a.node,
                    "arm": a.to,
                    "subscriber_id": row.subscriber_id,
                    "entered_at": a.at,
                    "horizon_end": a.at + horizon(campaign),
                }
            )
    repo.add_split_entries(s, entries)
