"""`campaign experiment promote CAMPAIGN SPLIT ARM`: what it prints (the command's words
and options are `experiment`'s, in `orchestrator.cli.experiments`)."""

from __future__ import annotations

import json
from typing import Any

import typer

from orchestrator.cli.common import now_option, open_cli_context


def run(
    campaign: str,
    split: str,
    arm: str,
    *,
    by: str | None,
    reason: str,
    dry_run: bool,
    as_json: bool,
    now: str | None,
) -> None:
    """Promote `arm` (or, with `dry_run`, show what promoting it would change) and print
    the file's change, the figures it was promoted on and what became of the journeys."""
    import getpass

    from orchestrator.app.promote import promote

    moment = now_option(now)
    who = (getpass.getuser() or "cli") if by is None else by
    done = promote(
        open_cli_context(),
        campaign,
        split,
        arm,
        by=who,
        reason=reason,
        now=moment,
        dry_run=dry_run,
    )
    if as_json:
        typer.echo(json.dumps(done.as_dict(), indent=2))
        return
    typer.echo(done.diff, nl=False)
    _print_figures(done.figures)
    if dry_run:
        typer.echo(
            f"dry run: promoting {arm} on split {split} changes {done.file} as shown; nothing changed"
        )
        return
    why = f" ({done.reason})" if done.reason else ""
    typer.echo(
        f"{done.campaign}: {done.sentence()} by {done.by}{why}: version {done.version}, "
        f"{done.moved} journeys in flight moved to it; every new journey at {split} takes {arm}"
    )
    if done.left:
        typer.echo(
            f"{done.campaign}: {done.left} journeys on an older version whose node is gone "
            f"stay where they are (`campaign migrate {done.campaign}` ends them)"
        )


def _print_figures(figures: dict[str, Any]) -> None:
    """The experiment's figures as `campaign experiment` shows them."""
    arms = figures.get("arms")
    if not isinstance(arms, list):
        return
    typer.echo(f"split {figures.get('split')} (control {figures.get('control')}), figures now:")
    typer.echo(
        f"  {'arm':<20} {'entered':>8} {'measured':>9} {'conv.':>7} {'rate':>7}  95 % interval"
    )
    for a in arms:
        rate, low, high = a.get("rate"), a.get("low"), a.get("high")
        shown_rate = "-" if rate is None else f"{rate:.1%}"
        span = "-" if low is None or high is None else f"{low:.1%} to {high:.1%}"
        typer.echo(
            f"  {a.get('arm', '?'):<20} {a.get('entered', 0):>8,} {a.get('measured', 0):>9,} "
            f"{a.get('converted', 0):>7,} {shown_rate:>7}  {span}"
        )
    for sentence in figures.get("sentences") or []:
        typer.echo(f"  {sentence}")
