"""Send-time optimisation: when, within `send_time.max_delay`, a due send is most likely
to convert for this subscriber (docs/engine.md, "Send-time optimisation").

The model is a hierarchy of beta-binomial shrinkage estimates (empirical Bayes: each
level's prior mean is the pooled rate of the level above, estimated from the data):

    campaign rate p0 -> campaign by local hour c[h] -> sub-campaign by hour g[h]
    -> subscriber by hour s[h] -> subscriber by hour of the week s[d, h]

each level `(k + m * parent) / (n + m)` from its own sends `n` and conversions `k`
and a prior strength `m` (GROUP_STRENGTH sends for the campaign and sub-campaign,
OWN_STRENGTH for a subscriber). With little data a subscriber's score is their
sub-campaign's, then the campaign's; the day of the week matters once the subscriber's
own sends at that hour of that day outweigh the prior.

Each send of a `best` node is in one of three arms, by a stable hash of (campaign,
subscriber, node, step): `immediate` (the comparison group, at once), `explore` (a
random allowed hour, so the model keeps learning where it has no data), or `best`.
Pure: the tick passes in the tallies it read from the send ledger.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from orchestrator.language.spec import SendTimeSpec

SLOTS = 168  # hours of the week, Monday 00:00 = 0
GROUP_STRENGTH = 50.0
OWN_STRENGTH = 5.0
STEP = timedelta(hours=1)

Tally = tuple[int, int]  # (sends, conversions)


def slot_of(moment: datetime, tz_name: str) -> int:
    """The hour of the week of `moment` on the wall clock of `tz_name`."""
    return _slot(moment.astimezone(ZoneInfo(tz_name)))


def shrink(k: float, n: float, parent: float, strength: float) -> float:
    return (k + strength * parent) / (n + strength)


def hourly(tallies: Mapping[int, Tally]) -> list[Tally]:
    """Week-slot tallies folded into the 24 hours of the day."""
    out = [(0, 0)] * 24
    for slot, (n, k) in tallies.items():
        h = slot % 24
        out[h] = (out[h][0] + n, out[h][1] + k)
    return out


def group_prior(campaign: Mapping[int, Tally], group: Mapping[int, Tally]) -> list[float]:
    """The sub-campaign's rate by hour of the day, shrunk toward the campaign's by hour,
    shrunk toward the campaign's overall rate."""
    camp_hours = hourly(campaign)
    total_n = sum(n for n, _ in camp_hours)
    total_k = sum(k for _, k in camp_hours)
    p0 = total_k / total_n if total_n else 0.0
    c = [shrink(k, n, p0, GROUP_STRENGTH) for n, k in camp_hours]
    return [shrink(k, n, c[h], GROUP_STRENGTH) for h, (n, k) in enumerate(hourly(group))]


@dataclass(frozen=True)
class SendTimeData:
    """What the optimiser knows for one subscriber: their own sends by week slot (any
    campaign) and their sub-campaign's prior by hour of the day (`group_prior`)."""

    own: Mapping[int, Tally] = field(default_factory=dict)
    prior: Sequence[float] = (0.0,) * 24

    def scores(self) -> list[float]:
        """The estimated conversion rate for each of the 168 hours of the week."""
        return self.scorer()(range(SLOTS))

    def scorer(self) -> Callable[[Iterable[int]], list[float]]:
        """A function from week slots to their estimated rates (the subscriber's hourly
        level computed once, each slot only when asked)."""
        by_hour = [
            shrink(k, n, self.prior[h], OWN_STRENGTH) for h, (n, k) in enumerate(hourly(self.own))
        ]
        own = self.own

        def score(slots: Iterable[int]) -> list[float]:
            out = []
            for slot in slots:
                n, k = own.get(slot, (0, 0))
                out.append(shrink(k, n, by_hour[slot % 24], OWN_STRENGTH))
            return out

        return score


NO_DATA = SendTimeData()


def arm_of(fraction: float, spec: SendTimeSpec) -> str:
    """The arm of a send from its stable fraction in [0, 1)."""
    if fraction < spec.compare:
        return "immediate"
    if fraction < spec.compare + spec.explore:
        return "explore"
    return "best"


def candidates(arrival: datetime, spec: SendTimeSpec) -> list[datetime]:
    """`arrival`, then the start of every hour after it within `max_delay`."""
    first = arrival.replace(minute=0, second=0, microsecond=0) + STEP
    out = [arrival]
    moment = first
    while moment <= arrival + spec.max_delay:
        out.append(moment)
        moment += STEP
    return out


def choose(
    arm: str,
    arrival: datetime,
    spec: SendTimeSpec,
    *,
    tz_name: str,
    data: SendTimeData,
    allowed: Callable[[datetime], bool],
    fraction: float,
) -> datetime:
    """The moment a send of `arm` goes: at once for `immediate`; for `explore` an allowed
    candidate picked by `fraction`; for `best` the allowed candidate with the highest
    score (the earliest of equals). `allowed` says whether quiet hours, spacing, the
    frequency cap and a pause let a send go then; with no allowed candidate, `arrival`
    (the usual deferrals then apply)."""
    if arm == "immediate":
        return arrival
    moments = candidates(arrival, spec)
    if arm == "explore":
        options = [m for m in moments if allowed(m)]
        return options[int(fraction * len(options)) % len(options)] if options else arrival
    zone = ZoneInfo(tz_name)
    slots = [_slot(m.astimezone(zone)) for m in moments]
    scores = data.scorer()(slots)
    # the best first (the earliest of equals); only as many checked as it takes
    for _, moment in sorted(zip(scores, moments, strict=True), key=lambda p: (-p[0], p[1])):
        if allowed(moment):
            return moment
    return arrival


def _slot(local: datetime) -> int:
    return local.weekday() * 24 + local.hour
