"""Day-to-day commands: subscribers, events, tick, status, segments, migrate."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from orchestrator.cli.common import (
    app,
    now_option,
    open_cli_context,
    print_funnel,
    scalar_option,
)

subscribers_app = typer.Typer(
    help="Subscribers and their push subscriptions.", no_args_is_help=True
)
app.add_typer(subscribers_app, name="subscribers")


@subscribers_app.command("import")
def subscribers_import(
    file: Annotated[Path, typer.Argument(help="JSONL: one subscriber per line")],
) -> None:
    """Add or update subscribers; bad lines are reported with their number and skipped."""
    from orchestrator.app.service import import_subscribers

    if not file.is_file():
        typer.echo(f"{file}: no such file", err=True)
        raise typer.Exit(2)
    ctx = open_cli_context()
    report = import_subscribers(ctx, file)
    for number, message in report.bad:
        typer.echo(f"{file}:{number}: {message}", err=True)
    typer.echo(
        f"{report.added} added, {report.changed} updated, {report.unchanged} unchanged, "
        f"{len(report.bad)} bad line{'s' * (len(report.bad) != 1)}"
    )
    raise typer.Exit(1 if report.bad else 0)


@subscribers_app.command("revoke-links")
def subscribers_revoke_links(
    subscriber: Annotated[str, typer.Argument(help="subscriber id")],
) -> None:
    """Revoke every profile link of a subscriber (a leaked link stops working); prints the new one."""
    from orchestrator.app.visitors import revoke_links
    from orchestrator.language.records import RecordError

    try:
        link = revoke_links(open_cli_context(), subscriber, now=datetime.now(UTC))
    except RecordError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    except KeyError:
        typer.echo(
            f"error: no subscriber {subscriber[:140]!r} (or their data was deleted)", err=True
        )
        raise typer.Exit(1) from None
    typer.echo(f"every earlier profile link of {subscriber} is revoked; the new one:\n{link}")


@subscribers_app.command("identity-key")
def subscribers_identity_key() -> None:
    """The key a site's backend uses to prove its own subscriber ids (`id_hash`, docs/web.md)."""
    from orchestrator.app import tokens

    typer.echo(tokens.identity_key(open_cli_context().secret()))


events_app = typer.Typer(help="Events: conversions, triggers, unsubscribes.", no_args_is_help=True)
app.add_typer(events_app, name="events")


@events_app.command("add")
def events_add(
    subscriber: Annotated[str, typer.Option("--subscriber", help="subscriber id")],
    event: Annotated[str, typer.Option("--event", help="event name")],
    at: Annotated[str | None, typer.Option("--at", help="ISO time (default: now)")] = None,
    prop: Annotated[
        list[str] | None, typer.Option("--prop", help="K=V property (repeatable)")
    ] = None,
    event_id: Annotated[
        str | None,
        typer.Option("--id", help="your id for this event: recording it again stores it once"),
    ] = None,
) -> None:
    """Record one event for a subscriber."""
    from orchestrator.app.service import record_events
    from orchestrator.language.records import RecordError, parse_event

    properties: dict[str, Any] = {}
    raw: dict[str, Any] = {"subscriber": subscriber, "name": event, "properties": properties}
    if at is not None:
        raw["at"] = at
    if event_id is not None:
        raw["id"] = event_id
    try:
        for item in prop or []:
            key, sep, value = item.partition("=")
            if not sep or not key:
                raise RecordError(f"--prop {item[:80]!r}: expected KEY=VALUE")
            properties[key] = scalar_option(value, f"--prop {key[:80]}")
        record = parse_event(raw, default_at=datetime.now(UTC))
        stored = record_events(open_cli_context(), [record])
    except RecordError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    (number,) = stored.ids
    if stored.repeated:
        typer.echo(f"already recorded as event {number} (same --id): nothing stored")
        return
    typer.echo(f"recorded event {number}: {event} for {subscriber} at {record.at.isoformat()}")


@app.command()
def tick(
    campaigns: Annotated[
        list[str] | None, typer.Argument(help="campaign ids (default: all)")
    ] = None,
    now: Annotated[str | None, typer.Option("--now", help="ISO time instead of the clock")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, max=100_000)] = 500,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """One pass: enrol, then advance every due journey, sending what is due."""
    from orchestrator.app.service import campaign_paths
    from orchestrator.app.ticking import tick as run_tick
    from orchestrator.push.processes import DeliveryProcessError
    from orchestrator.push.vapid import check_ready
    from orchestrator.store import failures

    ctx = open_cli_context()
    campaign_paths(ctx, campaigns or None)  # no campaign at all: say so before anything else
    check_ready(ctx.config)  # before anything is claimed
    try:
        report = run_tick(ctx, now=now_option(now), names=campaigns or None, batch_size=batch_size)
    except DeliveryProcessError as exc:
        typer.echo(
            f"error: a delivery process failed during the tick ({exc}). Batches already "
            "answered are recorded; sends claimed but not answered go out again after the "
            "claim grace.",
            err=True,
        )
        raise typer.Exit(1) from None
    except Exception as exc:  # e.g. the connection dropped: what was committed stays
        if not failures.is_database_error(exc):
            raise
        typer.echo(
            f"error: the database failed during the tick ({failures.reason(exc)}). Batches already "
            "committed are kept; sends claimed but not answered go out again after the "
            "claim grace, and the next tick takes up the rest.",
            err=True,
        )
        raise typer.Exit(1) from None
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "campaigns": [
                        {
                            "campaign": c.campaign,
                            "version": c.version_id,
                            "enrolled": c.enrolled,
                            "holdout": c.holdout,
                            "journeys": c.journeys,
                            "sends": c.sends,
                            "outcomes": dict(c.outcomes),
                            "seconds": round(c.seconds, 3),
                            "held": c.held,
                        }
                        for c in report.campaigns
                    ],
                    "refused": report.refused,
                    "failed": report.failed,
                },
                indent=2,
            )
        )
    else:
        for c in report.campaigns:
            if c.held is not None:
                typer.echo(f"{c.campaign}: {c.held}; nothing enrolled or sent")
                continue
            outcomes = ", ".join(f"{n} {k}" for k, n in sorted(c.outcomes.items())) or "none"
            typer.echo(
                f"{c.campaign}: {c.enrolled} enrolled ({c.holdout} holdout), {c.journeys} journeys advanced, "
                f"{c.sends} sends ({outcomes}) in {c.seconds:.2f}s"
            )
        for path, reason in report.refused.items():
            typer.echo(f"{path}: refused: {reason}", err=True)
    for name, reason in report.failed.items():  # the other campaigns ran
        error = report.errors.get(name)
        if error is not None and failures.is_database_error(error):
            what = f"the database failed during the tick of {name} ({reason.partition(': ')[2]})"
        elif isinstance(error, DeliveryProcessError):
            what = f"a delivery process failed during the tick of {name} ({error})"
        else:
            what = f"the tick of {name} failed ({reason})"
        typer.echo(
            f"error: {what}. Batches already committed are kept; sends claimed but not "
            "answered go out again after the claim grace, and the next tick takes up the rest.",
            err=True,
        )
    raise typer.Exit(1 if report.refused or report.failed else 0)


@app.command()
def status(
    campaign: Annotated[str, typer.Argument(help="campaign id")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Per-node funnel, exits by reason, sends by outcome; whether the campaign is paused
    or stopped (with its latest actions); a broadcast's moment and whether it has been
    sent."""
    import contextlib

    from orchestrator.app import control
    from orchestrator.app.broadcasts import broadcast_status
    from orchestrator.app.service import campaign_file, status as get_status
    from orchestrator.errors import UnknownCampaignError, UnreadableFileError
    from orchestrator.language import loader

    ctx = open_cli_context()
    figures = get_status(ctx, campaign)
    model = None
    with contextlib.suppress(UnknownCampaignError, UnreadableFileError):
        loaded = loader.load_unchanged(campaign_file(ctx, campaign))
        model = loaded.campaign if loaded.ok else None
    broadcast = broadcast_status(ctx, campaign, model, now=now_option(None))
    figures["broadcast"] = broadcast.as_dict() if broadcast else None
    held = control.state(ctx, campaign)
    figures["control"] = {**held.as_dict(), "history": control.history(ctx, campaign)[:10]}
    figures["control"].pop("schedule", None)
    if as_json:
        typer.echo(json.dumps(figures, indent=2, default=str))
        return
    typer.echo(f"campaign {campaign}")
    if held.at is not None:
        why = f" ({held.reason})" if held.reason else ""
        typer.echo(f"state: {held.state} since {held.at:%Y-%m-%d %H:%M} UTC, by {held.by}{why}")
    if broadcast:
        typer.echo(f"broadcast: {broadcast.line()}")
    print_funnel(figures, totals=("journeys", "exits", "sends"))


segments_app = typer.Typer(
    help="Check segments against the stored subscribers.", no_args_is_help=True
)
app.add_typer(segments_app, name="segments")


@segments_app.command("export")
def segments_export(
    name: Annotated[str, typer.Argument(help="segment name")],
    campaign: Annotated[str | None, typer.Option("--campaign", help="campaign defining it")] = None,
    fmt: Annotated[str, typer.Option("--format", help="csv or jsonl")] = "csv",
    output: Annotated[Path | None, typer.Option("-o", "--output")] = None,
    now: Annotated[str | None, typer.Option("--now", help="evaluate as of this ISO time")] = None,
) -> None:
    """Write a segment's members (id, timezone, attributes, tags), to check a segment before use."""
    from orchestrator.app.service import export_segment
    from orchestrator.errors import ConfigurationError

    if fmt not in ("csv", "jsonl"):
        raise typer.BadParameter("csv or jsonl", param_hint="--format")
    out = output.open("w", encoding="utf-8", newline="") if output else sys.stdout
    try:
        count = export_segment(
            open_cli_context(), name=name, campaign=campaign, fmt=fmt, out=out, now=now_option(now)
        )
    except ConfigurationError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    finally:
        if output:
            out.close()
    typer.echo(f"{count} member{'s' * (count != 1)} of {name}", err=True)


@segments_app.command("overlap")
def segments_overlap(
    campaign: Annotated[str, typer.Argument(help="campaign id")],
    now: Annotated[str | None, typer.Option("--now")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Member counts for every pair of a campaign's segments: where do they overlap?"""
    from orchestrator.app.service import segment_overlap
    from orchestrator.errors import ConfigurationError

    try:
        names, counts = segment_overlap(open_cli_context(), campaign=campaign, now=now_option(now))
    except ConfigurationError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    if as_json:
        typer.echo(
            json.dumps(
                {"segments": names, "counts": [[counts[a, b] for b in names] for a in names]}
            )
        )
        return
    width = max([len(n) for n in names] + [8])
    typer.echo(" " * width + "".join(f"{n[:12]:>14}" for n in names))
    for a in names:
        typer.echo(f"{a:<{width}}" + "".join(f"{counts[a, b]:>14}" for b in names))


@app.command()
def migrate(
    campaign: Annotated[str, typer.Argument(help="campaign id")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="only list who would move where")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    now: Annotated[str | None, typer.Option("--now")] = None,
) -> None:
    """Move in-flight journeys to the newest version; a removed node ends its journeys."""
    from orchestrator.app import versions

    ctx = open_cli_context()
    migration = versions.plan(ctx, campaign)
    if as_json:
        typer.echo(json.dumps({**migration.summary(), "applied": not dry_run}, indent=2))
    else:
        for m in migration.moves:
            how = "resumes" if m.resumes else "re-enters"
            typer.echo(
                f"move  {m.subscriber_id}: {m.from_subcampaign}/{m.node} v{m.from_version} -> "
                f"{m.to_subcampaign}/{m.node} v{m.to_version} ({how})"
            )
        for m in migration.ends:
            typer.echo(
                f"end   {m.subscriber_id}: {m.from_subcampaign}/{m.node} v{m.from_version} (removed_node)"
            )
        verb = "would move" if dry_run else "moved"
        typer.echo(
            f"{migration.campaign}: {verb} {len(migration.moves)} journeys to version {migration.to_version}, "
            f"{'would end' if dry_run else 'ended'} {len(migration.ends)} (removed node)"
        )
    if not dry_run:
        versions.apply(ctx, migration, now=now_option(now))


def _act(action: str, campaign: str, reason: str, by: str | None, as_json: bool) -> None:
    import getpass

    from orchestrator.app import control
    from orchestrator.web.prefect_ui import PrefectDirectory

    ctx = open_cli_context()
    who = getpass.getuser() or "cli" if by is None else by
    done, ended = control.act(
        ctx,
        campaign,
        action,
        by=who,
        reason=reason,
        now=now_option(None),
        schedule=PrefectDirectory(ctx.config).switch_schedule,
    )
    if as_json:
        typer.echo(json.dumps({**done.as_dict(), "ended": ended}, indent=2))
        return
    typer.echo(f"{campaign}: {done.state} by {who}" + (f" ({reason})" if reason else ""))
    if ended:
        typer.echo(f"{campaign}: {sum(ended.values())} journeys ended (stopped)")
    typer.echo(f"{campaign}: schedule: {done.schedule}")


ACTIONS = {
    "pause": "Pause a campaign: no enrolment and no sends; its journeys keep their place. "
    "Its Prefect deployment is paused too.",
    "resume": "Resume a paused or stopped campaign: ticks go on, due journeys in due order. "
    "Its Prefect deployment is resumed.",
    "stop": "Stop a campaign: its journeys end (reason `stopped`); none start until it resumes. "
    "Its Prefect deployment is paused.",
}


def _control_command(action: str) -> None:
    def command(
        campaign: Annotated[str, typer.Argument(help="campaign id")],
        reason: Annotated[str, typer.Option("--reason", help="why (shown on the dashboard)")] = "",
        by: Annotated[str | None, typer.Option("--by", help="who (default: the user name)")] = None,
        as_json: Annotated[bool, typer.Option("--json")] = False,
    ) -> None:
        _act(action, campaign, reason, by, as_json)

    app.command(name=action, help=ACTIONS[action])(command)


for _action in ACTIONS:
    _control_command(_action)
