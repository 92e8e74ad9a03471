"""The simulate overlay: the editor's unsaved text walked by `campaign simulate` over a
synthetic population, its per-node figures drawn on the flowchart.

The simulator reads campaign files from disk, so the text runs from a private copy of
the campaigns folder (the files `include:` pulls in are there, at the same relative
places) in a temporary folder: the author's folder is never written, and a tick
watching it never sees the unsaved text.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from orchestrator import render
from orchestrator.errors import CampaignError
from orchestrator.sim.simulate import simulate
from orchestrator.studio.checking import valid_campaign
from orchestrator.studio.workspace import StudioError, Workspace

START = datetime(2026, 1, 5, 9, tzinfo=UTC)  # `campaign simulate`'s default start
RESOLUTION = timedelta(hours=1)
MAX_SUBSCRIBERS = 10_000
DEFAULT_SUBSCRIBERS = 1000


@dataclass
class Overlay:
    svg: str
    counts: dict[str, dict[str, int]]
    summary: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {"svg": self.svg, "counts": self.counts, "summary": self.summary}


def simulate_text(
    workspace: Workspace,
    name: str,
    text: str,
    *,
    subscribers: int = DEFAULT_SUBSCRIBERS,
    seed: int = 0,
) -> Overlay:
    """Simulate the unsaved `text` of file `name` over `subscribers` synthetic subscribers
    (hourly virtual ticks, until every journey ends) and draw the figures."""
    if not 1 <= subscribers <= MAX_SUBSCRIBERS:
        raise StudioError(f"subscribers: from 1 to {MAX_SUBSCRIBERS:,}")
    campaign = valid_campaign(workspace, name, text, to="simulate it")
    with tempfile.TemporaryDirectory(prefix="campaign-studio-") as tmp:
        copy = Path(tmp) / "graphs"
        for other in workspace.names():
            target = copy / other
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(workspace.path(other), target)
        mine = copy / name
        mine.parent.mkdir(parents=True, exist_ok=True)
        mine.write_text(text, encoding="utf-8")
        try:
            result = simulate(
                mine,
                subscribers=subscribers,
                seed=seed,
                start=START,
                resolution=RESOLUTION,
                workers=1,  # no fork from the web server's threads
            )
        except CampaignError as exc:
            raise StudioError(f"simulate: {exc}") from None
    counts = result.counts
    summary = {
        "subscribers": result.subscribers,
        "steps": result.steps,
        "sent": result.sends,
        "conversions": result.conversions,
        "exits": result.funnel.get("exits", {}),
        "unfinished_journeys": result.unfinished,
        "virtual_days": round((result.end - result.start).total_seconds() / 86400, 1),
        "seconds": round(result.seconds, 3),
    }
    return Overlay(render.to_svg(campaign, counts=counts), counts, summary)
