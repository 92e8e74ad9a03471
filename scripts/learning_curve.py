"""Draw the send-time optimiser's learning curve for docs/engine.md.

Simulates docs/campaigns/daily-deals.yaml (a daily segment campaign with `send_time:
best`) over a synthetic population whose subscribers each convert mostly in three local
hours of their own (`campaign simulate --active-hours`), and draws the conversion rate
per send by week for each arm: the best hour, exploring, and at once (the comparison
group). Writes docs/img/send-time-learning.svg and prints the figures.

    .venv/bin/python scripts/learning_curve.py [--subscribers 1000] [--weeks 8] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from orchestrator.sim.simulate import simulate
from orchestrator.web import charts

ROOT = Path(__file__).resolve().parent.parent
CAMPAIGN = ROOT / "docs" / "campaigns" / "daily-deals.yaml"
OUT = ROOT / "docs" / "img" / "send-time-learning.svg"
START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
STYLE = (
    "<style>.chart-title{font:600 13px sans-serif}.tick{font:11px sans-serif;fill:#555}"
    ".grid{stroke:#e5e7eb}</style>"
)
ARMS = {"best": "best hour", "explore": "exploring", "immediate": "at once (comparison)"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--weeks", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    result = simulate(
        CAMPAIGN,
        subscribers=args.subscribers,
        seed=args.seed,
        rates={"deal": 0.3, "reminder": 0.3},
        start=START,
        until=START + timedelta(weeks=args.weeks),
        resolution=timedelta(hours=1),
        active_hours=True,
    )
    figures = result.as_dict()["send_time"]
    weeks = [w for w in figures["weeks"] if w["week"] < args.weeks]  # whole weeks only
    days = [(START + timedelta(weeks=w["week"])).date() for w in weeks]
    series = {
        label: [float(w.get(arm, {}).get("rate") or 0.0) for w in weeks]
        for arm, label in ARMS.items()
    }
    svg = charts.lines("Conversion rate per send, by week", days, series, percent=True)
    head, _, rest = svg.partition(">")
    OUT.write_text(f"{head}>{STYLE}{rest}\n", encoding="utf-8")
    print(json.dumps({"arms": figures["arms"], "lift": figures["lift"], "weeks": weeks}, indent=1))
    print(f"wrote {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
