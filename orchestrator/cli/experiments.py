"""Experiments: `campaign experiment CAMPAIGN`, `campaign experiment plan CAMPAIGN` and
`campaign experiment promote CAMPAIGN SPLIT ARM` (its output: `orchestrator.cli.promote`)."""

from __future__ import annotations

import contextlib
import json
import textwrap
from typing import Annotated, Any

import typer

from orchestrator.cli.common import app, now_option, open_cli_context


@app.command()
def experiment(
    words: Annotated[
        list[str],
        typer.Argument(
            help="CAMPAIGN, or: plan CAMPAIGN, or: promote CAMPAIGN SPLIT ARM", show_default=False
        ),
    ],
    now: Annotated[str | None, typer.Option("--now", help="the clock (default: now)")] = None,
    baseline: Annotated[
        str | None, typer.Option("--baseline", help="plan: the control's rate, e.g. 10%")
    ] = None,
    effect: Annotated[
        str | None,
        typer.Option("--effect", help="plan: the smallest change worth finding, e.g. 2pt"),
    ] = None,
    power: Annotated[str, typer.Option("--power", help="plan: e.g. 80%")] = "80%",
    as_json: Annotated[bool, typer.Option("--json")] = False,
    by: Annotated[
        str | None, typer.Option("--by", help="promote: who (default: the user name)")
    ] = None,
    reason: Annotated[str, typer.Option("--reason", help="promote: why (kept with it)")] = "",
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="promote: show the file's change and the figures only"),
    ] = False,
) -> None:
    """Every split node's A/B test, the journey as the unit: each arm's measured journeys,
    conversions and rate with its 95 % interval, and each arm's lift over the control with
    its interval and Holm-corrected p-value. `plan CAMPAIGN --baseline 10% --effect 2pt`:
    the journeys each split needs, and roughly when it gets them. `promote CAMPAIGN SPLIT
    ARM [--by NAME] [--reason TEXT] [--dry-run]`: ends SPLIT's test with ARM as its winner
    (`winner: ARM` written into the file, the journeys in flight moved to that version, the
    figures recorded); `--dry-run` shows the file's change and the figures (docs/engine.md,
    "Experiments")."""
    from orchestrator.app.experiments import experiments, plan

    if words[:1] == ["promote"] and len(words) == 4:
        from orchestrator.cli.promote import run

        _, campaign, split, arm = words
        run(campaign, split, arm, by=by, reason=reason, dry_run=dry_run, as_json=as_json, now=now)
        return
    if by is not None or reason or dry_run:
        raise typer.BadParameter("--by, --reason and --dry-run go with: promote CAMPAIGN SPLIT ARM")
    if len(words) == 2 and words[0] == "plan":
        campaign, planning = words[1], True
    elif len(words) == 1:
        campaign, planning = words[0], False
    else:
        raise typer.BadParameter(
            "give CAMPAIGN, or: plan CAMPAIGN, or: promote CAMPAIGN SPLIT ARM", param_hint="WORDS"
        )
    ctx = open_cli_context()
    model = _valid_campaign(ctx, campaign)
    moment = now_option(now)
    if planning:
        if (baseline is None) != (effect is None):
            raise typer.BadParameter("give both --baseline and --effect, or neither")
        try:
            plans = plan(
                ctx,
                model,
                baseline=None if baseline is None else _fraction(baseline, "--baseline"),
                effect=None if effect is None else _points(effect),
                power=_power(power),
                now=moment,
            )
        except ValueError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None
        if as_json:
            shown = [p.__dict__ | {"sentence": p.sentence()} for p in plans]
            typer.echo(json.dumps({"campaign": campaign, "plans": shown}, indent=2))
        else:
            for p in plans:
                typer.echo(p.sentence())
            if not plans:
                typer.echo(f"{campaign}: no split node, so nothing to plan")
        return
    found = experiments(ctx, model, now=moment)
    if as_json:
        typer.echo(
            json.dumps({"campaign": campaign, "splits": [e.as_dict() for e in found]}, indent=2)
        )
        return
    if not found:
        typer.echo(f"{campaign}: no split node, so no experiment")
        return
    print_experiments([e.as_dict() for e in found])


def print_experiments(splits: list[dict[str, Any]]) -> None:
    """Each split's table, sentences and how to read them, from `Experiment.as_dict()`
    (`campaign experiment`, and `campaign simulate`'s text output)."""
    for e in splits:
        planned = e["planned_per_arm"]
        size = f"; planned {planned:,} measured journeys per arm" if planned else ""
        typer.echo(
            f"split {e['split']} ({e['status']}; control {e['control']}; converted within "
            f"{e['horizon']} of entering{size})"
        )
        typer.echo(
            f"  {'arm':<20} {'entered':>8} {'measured':>9} {'conv.':>7} {'rate':>7}  95 % interval"
        )
        for a in e["arms"]:
            rate, low, high = a["rate"], a["low"], a["high"]
            shown_rate = "-" if rate is None else f"{rate:.1%}"
            span = "-" if low is None or high is None else f"{low:.1%} to {high:.1%}"
            typer.echo(
                f"  {a['arm']:<20} {a['entered']:>8,} {a['measured']:>9,} {a['converted']:>7,} "
                f"{shown_rate:>7}  {span}"
            )
        for sentence in e["sentences"]:
            typer.echo(
                textwrap.fill(sentence, width=88, initial_indent="  ", subsequent_indent="    ")
            )
        typer.echo(
            textwrap.fill(e["explanation"], width=88, initial_indent="  ", subsequent_indent="  ")
        )


def _valid_campaign(ctx: Any, campaign: str) -> Any:
    from orchestrator.app.service import campaign_file
    from orchestrator.errors import UnknownCampaignError, UnreadableFileError
    from orchestrator.language import loader

    try:
        path = campaign_file(ctx, campaign)
        loaded = loader.load_unchanged(path)
    except (UnknownCampaignError, UnreadableFileError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    if not loaded.ok or loaded.campaign is None:
        typer.echo(
            f"error: {campaign!r} does not validate: campaign validate {loaded.display}",
            err=True,
        )
        raise typer.Exit(1)
    return loaded.campaign


def _fraction(text: str, option: str) -> float:
    from orchestrator.language.spec import parse_percent

    try:
        return parse_percent(text if text.strip().endswith("%") else float(text))
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint=option) from None


def _power(text: str) -> float:
    from orchestrator.language.spec import check_power

    try:
        return check_power(_fraction(text, "--power"))
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--power") from None


def _points(text: str) -> float:
    """`2pt` (two percentage points) or a fraction (`0.02`); negative for a drop."""
    from orchestrator.language.spec import parse_points

    value: str | float = text.strip()
    with contextlib.suppress(ValueError):
        value = float(text) if text.strip().isascii() else text
    try:
        return parse_points(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--effect") from None
