"""The figures the dashboard draws: per node, per A/B arm, holdout lift, and the seed's metrics.

All counting happens in the database (GROUP BY queries); Python only shapes
the rows. Each split node is an experiment with the journey as its unit
(`experiments`); holdout lift compares the goal rate of treated and held-out journeys
over the same span; the send-time optimiser's lift compares its best-hour sends with
its comparison group sent at once.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from orchestrator.app import experiment_stats, experiments
from orchestrator.app.journeys import horizon as horizon
from orchestrator.app.sendtimes import uses_best
from orchestrator.app.service import OPT_SOURCES, Context, status
from orchestrator.delivery import Outcome
from orchestrator.language import loader
from orchestrator.language.spec import Campaign
from orchestrator.store import repo

DAYS = 30


@dataclass
class CampaignSummary:
    id: str
    title: str
    path: str
    problem: str | None = None
    journeys: int = 0
    in_flight: int = 0
    sent: int = 0
    delivered: int = 0
    converted: int = 0

    @property
    def conversion_rate(self) -> float | None:
        return self.converted / self.sent if self.sent else None


@dataclass
class Holdout:
    """Treated against held-out journeys (reached the goal within the horizon of entering):
    the relative lift, and the difference of rates with its 95 % Newcombe interval; the
    campaign's, with each sub-campaign's in `parts`."""

    treated: int
    treated_converted: int
    held_out: int
    held_out_converted: int
    parts: dict[str, Holdout] = field(default_factory=dict)

    @property
    def lift(self) -> float | None:
        if not self.held_out or not self.treated or not self.held_out_converted:
            return None
        base = self.held_out_converted / self.held_out
        return (self.treated_converted / self.treated - base) / base

    @property
    def difference(self) -> experiment_stats.Lift:
        return experiment_stats.lift(
            "treated",
            self.treated_converted,
            self.treated,
            "held out",
            self.held_out_converted,
            self.held_out,
        )

    def sentence(self) -> str:
        found = self.difference
        if found.difference is None or found.low is None or found.high is None:
            return "Not enough journeys yet: both the treated and the held out need some."
        verdict = (
            "the interval excludes zero"
            if found.low > 0 or found.high < 0
            else "the interval includes zero: no lift shown yet"
        )
        return (
            f"Treated journeys reach the goal {found.difference * 100:+.1f} points against "
            f"the held out (95 % interval {found.low * 100:+.1f} to {found.high * 100:+.1f} "
            f"points; p {experiment_stats.format_p(found.p_value)}; {verdict})."
        )


@dataclass
class SendTimeLift:
    """Sends of `send_time: best` nodes by arm, (sends, conversions) each: the optimiser's
    lift is `best` against `immediate` (the comparison group sent at once), a difference of
    conversion rates per send with its 95 % Newcombe interval (statsmodels)."""

    arms: dict[str, tuple[int, int]]

    def rate(self, arm: str) -> float | None:
        n, k = self.arms.get(arm, (0, 0))
        return k / n if n else None

    @property
    def difference(self) -> tuple[float, float, float] | None:
        """(best − immediate, low, high) in rate units; None until both arms have sends."""
        (nb, kb), (ni, ki) = self.arms.get("best", (0, 0)), self.arms.get("immediate", (0, 0))
        found = experiment_stats.lift("best", kb, nb, "immediate", ki, ni)
        if found.difference is None or found.low is None or found.high is None:
            return None
        return found.difference, found.low, found.high

    def sentence(self) -> str:
        found = self.difference
        if found is None:
            return "Not enough data yet: both the best-hour and the at-once arms need sends."
        diff, low, high = found
        word = "better" if diff >= 0 else "worse"
        verdict = (
            "the interval excludes zero"
            if low > 0 or high < 0
            else "the interval includes zero: no difference shown yet"
        )
        return (
            f"Sends at the best hour convert {abs(diff) * 100:.1f} points {word} than sends "
            f"at once (95 % interval {low * 100:+.1f} to {high * 100:+.1f} points; {verdict})."
        )


@dataclass
class CampaignDetail:
    campaign: Campaign
    figures: dict[str, Any]
    nodes: list[dict[str, Any]] = field(default_factory=list)
    tests: list[experiments.Experiment] = field(default_factory=list)
    holdout: Holdout | None = None
    send_time: SendTimeLift | None = None
    daily: list[tuple[date, int, int]] = field(default_factory=list)  # day, sends, converted


def campaigns(ctx: Context) -> list[CampaignSummary]:
    out = []
    for path in loader.campaign_files([ctx.config.graphs]):
        try:
            loaded = loader.load_unchanged(path)
        except Exception as exc:  # unreadable: shown on the list, not a 500
            out.append(CampaignSummary(path.stem, path.stem, str(path), problem=str(exc)))
            continue
        if loaded.campaign is None or not loaded.ok:
            first = next((d.format() for d in loaded.errors), "does not validate")
            out.append(CampaignSummary(path.stem, path.stem, str(path), problem=first))
            continue
        c = loaded.campaign
        figures = status(ctx, c.campaign)
        phases = figures["journeys"]
        sends = figures["sends"]
        converted = sum(m.get("converted", 0) for m in figures["nodes"].values())
        out.append(
            CampaignSummary(
                c.campaign,
                c.title,
                str(path),
                journeys=sum(phases.values()),
                in_flight=sum(n for p, n in phases.items() if p != "ended"),
                sent=sum(n for o, n in sends.items() if o != Outcome.SKIPPED),
                delivered=sends.get(Outcome.DELIVERED, 0),
                converted=converted,
            )
        )
    return out


def campaign_detail(ctx: Context, campaign: Campaign, *, now: datetime) -> CampaignDetail:
    figures = status(ctx, campaign.campaign)
    detail = CampaignDetail(campaign, figures)
    for node_id, node in campaign.all_nodes().items():
        m = figures["nodes"].get(node_id, {})
        sent, converted = m.get("sent", 0), m.get("converted", 0)
        detail.nodes.append(
            {
                "node": node_id,
                "kind": type(node).__name__.removesuffix("Node").lower(),
                "entered": m.get("entered", 0),
                "sent": sent,
                "delivered": m.get("delivered", 0),
                "converted": converted,
                "no_convert": m.get("no_convert", 0),
                "deferred": m.get("deferred", 0),
                "rate": converted / sent if sent else None,
            }
        )
    detail.tests = experiments.experiments(ctx, campaign, now=now)
    detail.holdout = _holdout(ctx, campaign, now=now)
    if uses_best(campaign):
        with ctx.session() as s:
            detail.send_time = SendTimeLift(repo.timing_arms(s, campaign=campaign.campaign))
    detail.daily = _daily(ctx, campaign.campaign, now=now)
    return detail


def _holdout(ctx: Context, campaign: Campaign, *, now: datetime) -> Holdout | None:
    """Journeys whose subscriber reached the goal within `horizon` of entering: treated
    against held out (held-out journeys end at once, so their own span cannot be used)."""
    if not campaign.settings.holdout:
        return None
    span = horizon(campaign)
    with ctx.session() as s:
        by = repo.holdout_counts(s, campaign=campaign.campaign, goal=campaign.goal, span=span)
    parts: dict[str, Holdout] = {}
    for name in campaign.subcampaigns:
        treated, held = by.get((name, False), (0, 0)), by.get((name, True), (0, 0))
        parts[name] = Holdout(treated[0], treated[1], held[0], held[1])
    return Holdout(
        treated=sum(h.treated for h in parts.values()),
        treated_converted=sum(h.treated_converted for h in parts.values()),
        held_out=sum(h.held_out for h in parts.values()),
        held_out_converted=sum(h.held_out_converted for h in parts.values()),
        parts=parts,
    )


def _daily(ctx: Context, campaign: str | None, *, now: datetime) -> list[tuple[date, int, int]]:
    """Sends and the conversions credited to them, by the day they were sent (last 30 days)."""
    with ctx.session() as s:
        return repo.daily_sends(s, campaign=campaign, since=now - timedelta(days=DAYS))


# ------------------------------------------------------------------ the seed's short-term metrics


@dataclass
class Metrics:
    opt_ins: list[tuple[date, int]]
    opt_outs: list[tuple[date, int]]
    daily: list[tuple[date, int, int]]
    per_week: list[tuple[str, int]]  # sends per subscriber in the last 7 days: bucket, subscribers
    quiet_segments: list[tuple[str, str, int]]  # campaign, segment, members (none notified in 7 d)
    # source, opt-ins, opt-outs over the same days as opt_ins: OPT_SOURCES first, then others
    by_source: list[tuple[str, int, int]] = field(default_factory=list)


UNKNOWN_SOURCE = "other"  # an opt-in or opt-out event without a source (sent as an event)


def metrics(ctx: Context, *, now: datetime) -> Metrics:
    with ctx.session() as s:
        rows = repo.subscription_days(s, since=now - timedelta(days=DAYS))
        counts = repo.sends_per_subscriber(s, since=now - timedelta(days=7))
        active = repo.active_subscribers(s)
    days: dict[str, Counter[date]] = {repo.OPTED_IN: Counter(), repo.OPTED_OUT: Counter()}
    sources: dict[str, Counter[str]] = {repo.OPTED_IN: Counter(), repo.OPTED_OUT: Counter()}
    for name, day, source, n in rows:
        days[name][day] += n
        sources[name][source or UNKNOWN_SOURCE] += n
    opt_ins, opt_outs = (sorted(days[name].items()) for name in (repo.OPTED_IN, repo.OPTED_OUT))
    seen = set(sources[repo.OPTED_IN]) | set(sources[repo.OPTED_OUT])
    order = [x for x in OPT_SOURCES if x in seen] + sorted(seen - set(OPT_SOURCES))
    by_source = [(x, sources[repo.OPTED_IN][x], sources[repo.OPTED_OUT][x]) for x in order]
    buckets: Counter[str] = Counter()
    notified = 0
    for n, subscribers in counts:
        buckets["5+" if n >= 5 else str(n)] += subscribers
        notified += subscribers
    buckets["0"] = max(active - notified, 0)
    per_week = [(b, buckets.get(b, 0)) for b in ("0", "1", "2", "3", "4", "5+")]
    return Metrics(
        opt_ins,
        opt_outs,
        _daily(ctx, None, now=now),
        per_week,
        _quiet_segments(ctx, now=now),
        by_source,
    )


def _quiet_segments(ctx: Context, *, now: datetime) -> list[tuple[str, str, int]]:
    """Segments with members of whom none got a notification in the last 7 days."""
    week = now - timedelta(days=7)
    out = []
    for path in loader.campaign_files([ctx.config.graphs]):
        try:
            loaded = loader.load_unchanged(path)
        except Exception:
            continue
        if loaded.campaign is None or not loaded.ok:
            continue
        c = loaded.campaign
        with ctx.session() as s:
            for name in c.segments:
                total, reached = repo.segment_reach(
                    s, name, segments=c.segments, since=week, now=now
                )
                if total and not reached:
                    out.append((c.campaign, name, total))
    return out
