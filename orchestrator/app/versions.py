"""`campaign migrate`: move in-flight journeys to the newest version of their campaign.

A journey whose node still exists in the new version continues there (in the
sub-campaign that now holds the node); a journey whose node was removed ends
with reason `removed_node`. When the node changed kind (a notification became a
split, say), the journey re-enters the node at once instead of resuming its
phase there. The dry run shows exactly what applying would do.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from orchestrator.app.service import Context, campaign_paths, load_current
from orchestrator.errors import CampaignError
from orchestrator.language.spec import Campaign, NotificationNode, WaitNode
from orchestrator.store import repo
from orchestrator.store.db import Session


@dataclass(frozen=True)
class Move:
    journey_id: int
    subscriber_id: str
    node: str
    from_version: int
    to_version: int
    from_subcampaign: str
    to_subcampaign: str
    resumes: bool  # False: the node changed kind and is entered afresh


@dataclass
class MigrationPlan:
    campaign: str
    to_version: int
    moves: list[Move] = field(default_factory=list)
    ends: list[Move] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "campaign": self.campaign,
            "to_version": self.to_version,
            "moves": [m.__dict__ for m in self.moves],
            "ends": [m.__dict__ for m in self.ends],
        }


def _kind(node: Any) -> str:
    return type(node).__name__


def _phase_fits(phase: str, node: Any) -> bool:
    if phase in ("await", "timed"):
        return isinstance(node, NotificationNode)
    if phase == "wait":
        return isinstance(node, WaitNode)
    return True


def plan(ctx: Context, campaign: str) -> MigrationPlan:
    paths = campaign_paths(ctx, [campaign])
    load = load_current(ctx, paths[0])
    if (
        load.problem is not None
        or load.version_id is None
        or load.loaded is None
        or load.loaded.campaign is None
    ):
        raise CampaignError(f"{campaign}: {load.problem or 'cannot be loaded'}")
    new: Campaign = load.loaded.campaign
    result = MigrationPlan(campaign=new.campaign, to_version=load.version_id)
    with ctx.session() as s:
        rows = repo.journeys_off_version(s, campaign=new.campaign, version_id=load.version_id)
        old_models = {v: ctx.campaign_of_version(v, s) for v in {r.version_id for r in rows}}
    new_nodes = new.all_nodes()
    for row in rows:
        assert row.id is not None
        old_node = old_models[row.version_id].node(row.node)
        target = new_nodes.get(row.node)
        move = Move(
            journey_id=row.id,
            subscriber_id=row.subscriber_id,
            node=row.node,
            from_version=row.version_id,
            to_version=load.version_id,
            from_subcampaign=row.subcampaign,
            to_subcampaign=new.subcampaign_of(row.node) if target is not None else "",
            resumes=target is not None
            and _kind(target) == _kind(old_node)
            and _phase_fits(row.phase, target),
        )
        (result.moves if target is not None else result.ends).append(move)
    return result


def apply(ctx: Context, migration: MigrationPlan, *, now: datetime) -> None:
    """Carry out a plan in one transaction; journeys that changed meanwhile are left alone."""
    with ctx.session() as s, s.begin():
        apply_in(s, migration, now=now)


def apply_in(s: Session, migration: MigrationPlan, *, now: datetime) -> None:
    """`apply` inside the caller's transaction (a promotion records its action in the same
    one)."""
    counts: Counter[tuple[str, str]] = Counter()
    for m in migration.moves:
        values: dict[str, Any] = {"version_id": m.to_version, "subcampaign": m.to_subcampaign}
        if not m.resumes:
            values.update(phase="arrive", due_at=now, claim_at=now)
        repo.move_journey(s, m.journey_id, from_version=m.from_version, values=values)
    for m in migration.ends:
        ended = repo.move_journey(
            s,
            m.journey_id,
            from_version=m.from_version,
            values={
                "phase": "ended",
                "due_at": None,
                "claim_at": None,
                "ended_at": now,
                "exit_reason": "removed_node",
            },
        )
        if ended:
            counts[(m.node, "exit:removed_node")] += 1
    repo.bump(s, campaign=migration.campaign, counts=counts)
