"""A split's promotions as recorded (`campaign_action` rows of action `promote`): who
promoted which arm, when, why, and the experiment's figures at that moment. Written by
`promote`; read by the experiment panel and `campaign experiment`."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from orchestrator.app import control
from orchestrator.store import repo
from orchestrator.store.db import Session

PROMOTE = control.PROMOTE  # the action's name in `campaign_action`


@dataclass(frozen=True)
class Promotion:
    """A split's winner promoted (or, `applied` False, what promoting it would do)."""

    campaign: str
    split: str
    arm: str
    at: datetime
    by: str
    reason: str = ""
    figures: dict[str, Any] = field(default_factory=dict)  # the experiment's as_dict() then
    file: str = ""  # the campaign file, as shown
    diff: str = ""  # the file's change, a unified diff
    applied: bool = False  # False: a dry run, nothing changed
    version: int | None = None  # the version the file became
    moved: int = 0  # journeys in flight moved to that version
    left: int = 0  # journeys on an older version whose node is gone: `campaign migrate`'s

    def sentence(self) -> str:
        return f"promoted {self.arm} on split {self.split}"

    def line(self) -> str:
        """In words for an experiment's panel: "promoted to b on 2026-12-05 by alice"."""
        return f"promoted to {self.arm} on {self.at:%Y-%m-%d} by {self.by}"

    def summary(self) -> dict[str, Any]:
        """What an experiment's panel shows of it: who, when, why, and the sentences of
        the figures at that moment."""
        return {
            "arm": self.arm,
            "at": self.at.isoformat(),
            "by": self.by,
            "reason": self.reason,
            "sentences_then": list(self.figures.get("sentences", [])),
            "status_then": self.figures.get("status"),
        }

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "at": self.at.isoformat()}


def promotions(session: Session, campaign: str) -> dict[str, Promotion]:
    """The campaign's promotions by split: the latest of each (who, when, which arm, the
    figures then). Whether the file still names that winner is the file's to say."""
    out: dict[str, Promotion] = {}
    for row in repo.actions_of(session, campaign, (PROMOTE,)):
        details = row.details if isinstance(row.details, dict) else {}
        split, arm = details.get("split"), details.get("arm")
        if not isinstance(split, str) or not isinstance(arm, str):
            continue
        figures = details.get("figures")
        version = details.get("version")
        moved = details.get("moved")
        out[split] = Promotion(
            campaign=campaign,
            split=split,
            arm=arm,
            at=repo.aware(row.at) or row.at,
            by=row.by,
            reason=row.reason,
            figures=figures if isinstance(figures, dict) else {},
            applied=True,
            version=version if isinstance(version, int) else None,
            moved=moved if isinstance(moved, int) else 0,
        )
    return out
