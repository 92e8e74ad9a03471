"""The send-time optimiser's data for a batch: each subscriber's sends by local week slot
(any campaign, the last HISTORY) and their sub-campaign's prior (`engine.sendtime`),
read from the send ledger only for campaigns with a `send_time: best` node. A campaign's
tallies by node are read at most once per PRIOR_TTL of the tick's clock and kept on the
context."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from orchestrator.app.service import Context
from orchestrator.engine.sendtime import SendTimeData, Tally, group_prior
from orchestrator.language.spec import Campaign, NotificationNode
from orchestrator.store import repo
from orchestrator.store.db import Row, Session

HISTORY = timedelta(days=90)
PRIOR_TTL = timedelta(hours=1)


def uses_best(campaign: Campaign) -> bool:
    if campaign.settings.send_time.mode == "best":
        return True
    return any(
        isinstance(n, NotificationNode) and n.send_time is not None and n.send_time.mode == "best"
        for n in campaign.all_nodes().values()
    )


def data_for(
    ctx: Context,
    s: Session,
    rows: list[Row[Any]],
    campaigns: dict[int, Campaign],
    *,
    now: datetime,
) -> dict[int, SendTimeData]:
    """SendTimeData by journey id, for the rows whose campaign chooses send times."""
    best = {v for v, c in campaigns.items() if uses_best(c)}
    wanted = [r for r in rows if r.version_id in best]
    if not wanted:
        return {}
    own = repo.slot_tallies(s, (r.subscriber_id for r in wanted), since=now - HISTORY)
    out: dict[int, SendTimeData] = {}
    for r in wanted:
        prior = _prior(ctx, s, campaigns[r.version_id], r.subcampaign, now=now)
        out[r.id] = SendTimeData(own.get(r.subscriber_id, {}), prior)
    return out


def _prior(
    ctx: Context, s: Session, campaign: Campaign, subcampaign: str, *, now: datetime
) -> list[float]:
    key = (campaign.campaign, subcampaign)
    cached = ctx.send_time_priors.get(key)
    if cached is not None and now - PRIOR_TTL < cached[0] <= now:
        return cached[1]
    by_node = repo.node_slot_tallies(s, campaign=campaign.campaign, since=now - HISTORY)
    everything: dict[int, Tally] = {}
    group: dict[int, Tally] = {}
    nodes = (
        set(campaign.subcampaigns[subcampaign].nodes)
        if subcampaign in campaign.subcampaigns
        else set()
    )
    for node, tallies in by_node.items():
        for slot, (n, k) in tallies.items():
            a = everything.get(slot, (0, 0))
            everything[slot] = (a[0] + n, a[1] + k)
            if node in nodes:
                g = group.get(slot, (0, 0))
                group[slot] = (g[0] + n, g[1] + k)
    prior = group_prior(everything, group)
    ctx.send_time_priors[key] = (now, prior)
    return prior
