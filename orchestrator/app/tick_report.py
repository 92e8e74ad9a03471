"""What a tick did: per campaign and batch counts (`CampaignTick`, `BatchResult`; a claimed
batch not yet answered, `ClaimedBatch`), the whole tick's `TickReport`, and how a
campaign's tick is told in its log (`tick_lines`, `failure`, `note_failure`): counts
only, never a subscriber, a payload or a secret."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from orchestrator.delivery import Outcome, SendRequest, describe
from orchestrator.store.failures import DatabaseError

log = logging.getLogger("campaign.tick")


@dataclass
class CampaignTick:
    campaign: str
    version_id: int
    enrolled: int = 0
    holdout: int = 0
    journeys: int = 0
    batches: int = 0
    sends: int = 0
    resent: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    # journeys.step_summary of the tick; `deferred:rate_limit`: journeys a rate limit left due
    steps: Counter[str] = field(default_factory=Counter)
    origins: Counter[tuple[str, str]] = field(default_factory=Counter)  # (push origin, outcome)
    seconds: float = 0.0
    held: str | None = None  # "paused" or "stopped": the campaign neither enrolled nor sent

    def add(self, batch: BatchResult) -> None:
        self.batches += 1
        self.journeys += batch.journeys
        self.sends += batch.sends
        self.outcomes.update(batch.outcomes)
        self.steps.update(batch.steps)
        self.origins.update(batch.origins)


@dataclass
class TickReport:
    campaigns: list[CampaignTick] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)  # campaign: "TypeName: message"
    errors: dict[str, Exception] = field(default_factory=dict, repr=False)  # campaign: raised


def tick_lines(tick: CampaignTick, *, now: datetime) -> tuple[str, list[str]]:
    """What one campaign's tick did, for its log: one line (deferrals by reason, among them
    the journeys a rate limit left due: `deferred N (rate limit N)`), and the warnings a
    monitor acts on (sends not delivered, by outcome and push origin; sends skipped, by
    reason; journeys that ended with an error). Counts only: no subscriber, payload or
    secret."""
    steps = tick.steps
    if tick.held is not None:
        line = f"{tick.campaign} at {now:%Y-%m-%d %H:%M} UTC: {tick.held}; nothing enrolled or sent"
        return line, []

    def some(prefix: str) -> dict[str, int]:
        return {k.removeprefix(prefix): n for k, n in sorted(steps.items()) if k.startswith(prefix)}

    def listed(counts: dict[str, int]) -> str:
        return ", ".join(f"{k.replace('_', ' ')} {n}" for k, n in counts.items())

    parts = [f"enrolled {tick.enrolled}" + (f" (holdout {tick.holdout})" if tick.holdout else "")]
    if tick.resent:
        parts.append(f"resent {tick.resent}")
    parts.append(f"advanced {tick.journeys}")
    sent = f"sent {tick.sends}"
    if tick.outcomes:
        sent += f" ({listed(dict(sorted(tick.outcomes.items())))})"
    parts.append(sent)
    parts.append(f"converted {steps['converted']}, no convert {steps['no_convert']}")
    deferred, exits = some("deferred:"), some("exit:")
    if deferred:
        parts.append(f"deferred {sum(deferred.values())} ({listed(deferred)})")
    if exits:
        parts.append(f"exits {sum(exits.values())} ({listed(exits)})")
    line = f"{tick.campaign} at {now:%Y-%m-%d %H:%M} UTC: " + "; ".join(parts)
    warnings = []
    failed = {k: n for k, n in sorted(tick.outcomes.items()) if k != Outcome.DELIVERED}
    if failed:
        where = sorted(
            {origin for (origin, outcome), _ in tick.origins.items() if outcome in failed}
        )
        warnings.append(
            f"{tick.campaign}: {sum(failed.values())} of {tick.sends + tick.resent} sends not "
            f"delivered ({listed(failed)})" + (f" by {', '.join(where)}" if where else "")
        )
    skipped = some("skipped:") | some("not_sent:")
    if skipped:
        warnings.append(
            f"{tick.campaign}: {sum(skipped.values())} sends skipped or refused for good "
            f"({listed(skipped)}); their journeys took the no-convert edge"
        )
    if exits.get("error"):
        warnings.append(
            f"{tick.campaign}: {exits['error']} journeys ended with an error (see the log above)"
        )
    return line, warnings


def note_failure(report: TickReport, name: str, exc: Exception) -> None:
    """A campaign whose tick raised: in the report's `failed` (and `errors`), and logged."""
    report.failed[name], report.errors[name] = failure(exc), exc
    log.error(
        "%s: the tick failed (%s); the other campaigns go on",
        name,
        report.failed[name],
        exc_info=None if isinstance(exc, DatabaseError) else exc,
    )


def failure(exc: BaseException) -> str:
    """`TypeName: message` for a campaign whose tick raised; a database error by its
    driver's message only (never the statement or its parameters)."""
    if isinstance(exc, DatabaseError) and exc.orig is not None:
        lines = str(exc.orig).strip().splitlines()
        return f"{type(exc).__name__}: {lines[0] if lines else type(exc.orig).__name__}"[:500]
    return describe(exc)


@dataclass
class BatchResult:
    journeys: int
    sends: int
    outcomes: Counter[str]
    steps: Counter[str] = field(default_factory=Counter)  # journeys.step_summary of the batch
    origins: Counter[tuple[str, str]] = field(default_factory=Counter)  # (push origin, outcome)


@dataclass
class ClaimedBatch:
    """A batch whose claim has committed: its sends are in the ledger, not yet sent."""

    campaign: str
    journeys: int
    requests: list[SendRequest]
    more: bool  # False: this batch took the last due journey (no need to look again)
    steps: Counter[str] = field(default_factory=Counter)  # journeys.step_summary
    # under a rate limit: journeys are due, but it lets none be claimed before this
    room_at: datetime | None = None
