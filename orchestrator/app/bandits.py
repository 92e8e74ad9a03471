"""What a batch's bandit splits (`mode: bandit`) learn from: each (split, arm)'s measured
journeys and conversions of the split's goal (its own `goal`, else the campaign's), as
`repo.split_counts` counts them for the experiment pages; read once per campaign and
goal for a tick (its batches share them), and only for campaigns with a bandit split."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from orchestrator.engine.bandit import SplitTallies
from orchestrator.language.spec import Campaign, SplitNode
from orchestrator.store import repo
from orchestrator.store.db import Session


def bandit_splits(campaign: Campaign) -> dict[str, SplitNode]:
    """The campaign's bandit splits by node id."""
    return {
        node_id: node
        for node_id, node in campaign.all_nodes().items()
        if isinstance(node, SplitNode) and node.options.mode == "bandit"
    }


def uses_bandit(campaign: Campaign) -> bool:
    return bool(bandit_splits(campaign))


def tallies_for(
    s: Session,
    campaigns: dict[int, Campaign],
    *,
    now: datetime,
    cache: dict[tuple[str, str], tuple[datetime, Any]] | None = None,
) -> dict[int, SplitTallies]:
    """SplitTallies of the bandit splits by version id, for the versions that have one, as
    of `now`: one query per campaign and goal (a campaign's versions share them), kept in
    `cache` for the next batch of the same tick (the same `now`: an entry routed since is
    not measured before its horizon ends, so the figures are the same)."""
    read: dict[tuple[str, str], dict[tuple[str, str], tuple[int, int, int]]] = {}
    if cache is not None:
        read.update((key, counts) for key, (at, counts) in cache.items() if at == now)
    out: dict[int, SplitTallies] = {}
    for version_id, campaign in campaigns.items():
        splits = bandit_splits(campaign)
        if not splits:
            continue
        tallies: dict[tuple[str, str], tuple[int, int]] = {}
        for split_id, node in splits.items():
            key = (campaign.campaign, node.options.goal or campaign.goal)
            if key not in read:
                read[key] = repo.split_counts(s, campaign=key[0], goal=key[1], now=now)
                if cache is not None:
                    cache[key] = (now, read[key])
            for arm in node.arms:
                _, measured, converted = read[key].get((split_id, arm), (0, 0, 0))
                tallies[(split_id, arm)] = (measured, converted)
        out[version_id] = tallies
    return out
