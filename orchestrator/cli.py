"""The `campaign` command line (typer). A thin edge: parse arguments, call, print, exit."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from orchestrator import loader
from orchestrator.errors import UnreadableFileError

app = typer.Typer(
    name="campaign",
    help="Push-notification campaigns drawn as flowcharts in YAML.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


class OutputFormat(StrEnum):
    text = "text"
    json = "json"


class DrawFormat(StrEnum):
    mermaid = "mermaid"
    dot = "dot"
    svg = "svg"
    html = "html"


@app.command()
def validate(
    paths: Annotated[list[Path], typer.Argument(help="campaign files or folders of them")],
    format: Annotated[
        OutputFormat, typer.Option("--format", help="text or json")
    ] = OutputFormat.text,
) -> None:
    """Check campaign files: every problem at once, as FILE:LINE:COL: error: MESSAGE."""
    results: list[loader.LoadedCampaign] = []
    unreadable: list[str] = []
    for path in loader.campaign_files(paths):
        try:
            results.append(loader.load(path))
        except UnreadableFileError as exc:
            unreadable.append(str(exc))
    diagnostics = [d for r in results for d in r.diagnostics]
    errors = sum(1 for d in diagnostics if d.severity == "error")
    warnings = len(diagnostics) - errors
    if format is OutputFormat.json:
        out = {
            "files": [
                {
                    "file": r.display,
                    "campaign": r.campaign.campaign if r.campaign else None,
                    "ok": not r.errors,
                    "segment_file": r.is_segment_file,
                }
                for r in results
            ],
            "diagnostics": [d.as_dict() for d in diagnostics],
            "unreadable": unreadable,
            "errors": errors,
            "warnings": warnings,
        }
        typer.echo(json.dumps(out, indent=2))
    else:
        for d in diagnostics:
            typer.echo(d.format())
        for message in unreadable:
            typer.echo(f"{message}", err=True)
        checked = len(results)
        summary = f"{checked} file{'s' if checked != 1 else ''} checked: {errors} error{'s' if errors != 1 else ''}, {warnings} warning{'s' if warnings != 1 else ''}"
        if unreadable:
            summary += f", {len(unreadable)} unreadable"
        typer.echo(summary, err=True)
    if unreadable:
        raise typer.Exit(2)
    raise typer.Exit(1 if errors else 0)


@app.command()
def schema() -> None:
    """Print the JSON Schema of the campaign YAML language (for editors)."""
    from orchestrator.spec import json_schema

    typer.echo(json.dumps(json_schema(), indent=2))


@app.command()
def render(
    file: Annotated[Path, typer.Argument(help="a campaign file")],
    format: Annotated[DrawFormat, typer.Option("--format", "-f")] = DrawFormat.mermaid,
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="write here instead of stdout")
    ] = None,
    counts: Annotated[
        bool, typer.Option("--counts", help="overlay live per-node figures from the database")
    ] = False,
) -> None:
    """Draw a campaign's flowchart as mermaid, dot, svg or a self-contained html page."""
    from orchestrator import render as drawing

    try:
        loaded = loader.load(file)
    except UnreadableFileError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    if not loaded.ok or loaded.campaign is None:
        for d in loaded.diagnostics:
            typer.echo(d.format(), err=True)
        typer.echo(
            f"{loaded.display}: does not validate; fix the errors above to draw it", err=True
        )
        raise typer.Exit(1)
    figures = exits = None
    if counts:
        from orchestrator.service import drawing_counts
        from orchestrator.service import status as get_status

        ctx = _context()
        figures = drawing_counts(ctx, loaded.campaign)
        exits = get_status(ctx, loaded.campaign.campaign)["exits"]
    text = drawing.render(loaded.campaign, format.value, counts=figures, exits=exits)
    if output is None:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    else:
        output.write_text(text, encoding="utf-8")
        typer.echo(f"wrote {output}", err=True)


# ------------------------------------------------------------------ subscribers, events, ticks

subscribers_app = typer.Typer(
    help="Subscribers and their push subscriptions.", no_args_is_help=True
)
app.add_typer(subscribers_app, name="subscribers")


def _context(**kwargs: Any) -> Any:
    from orchestrator.service import open_context

    return open_context(**kwargs)


def _now(value: str | None) -> datetime:
    from orchestrator.records import RecordError, parse_time

    if value is None:
        return datetime.now(UTC)
    try:
        return parse_time(value, "--now")
    except RecordError as exc:
        raise typer.BadParameter(str(exc)) from None


@subscribers_app.command("import")
def subscribers_import(
    file: Annotated[Path, typer.Argument(help="JSONL: one subscriber per line")],
) -> None:
    """Add or update subscribers; bad lines are reported with their number and skipped."""
    from orchestrator.service import import_subscribers

    if not file.is_file():
        typer.echo(f"{file}: no such file", err=True)
        raise typer.Exit(2)
    ctx = _context()
    report = import_subscribers(ctx, file)
    for number, message in report.bad:
        typer.echo(f"{file}:{number}: {message}", err=True)
    typer.echo(
        f"{report.added} added, {report.changed} updated, {report.unchanged} unchanged, "
        f"{len(report.bad)} bad line{'s' * (len(report.bad) != 1)}"
    )
    raise typer.Exit(1 if report.bad else 0)


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
) -> None:
    """Record one event for a subscriber."""
    from orchestrator.records import RecordError, parse_event
    from orchestrator.service import add_events

    properties: dict[str, Any] = {}
    for item in prop or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            typer.echo(f"--prop {item!r}: expected KEY=VALUE", err=True)
            raise typer.Exit(1)
        properties[key] = _scalar(value)
    raw: dict[str, Any] = {"subscriber": subscriber, "name": event, "properties": properties}
    if at is not None:
        raw["at"] = at
    try:
        record = parse_event(raw, default_at=datetime.now(UTC))
        ids = add_events(_context(), [record])
    except RecordError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"recorded event {ids[0]}: {event} for {subscriber} at {record.at.isoformat()}")


def _scalar(text: str) -> Any:
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return text
    return value if isinstance(value, int | float | bool) else text


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
    from orchestrator.errors import ConfigurationError
    from orchestrator.push.setup import check_ready
    from orchestrator.ticking import tick as run_tick

    ctx = _context()
    try:
        check_ready(ctx.config)  # before anything is claimed
    except ConfigurationError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    report = run_tick(ctx, now=_now(now), names=campaigns or None, batch_size=batch_size)
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
                        }
                        for c in report.campaigns
                    ],
                    "refused": report.refused,
                },
                indent=2,
            )
        )
    else:
        for c in report.campaigns:
            outcomes = ", ".join(f"{n} {k}" for k, n in sorted(c.outcomes.items())) or "none"
            typer.echo(
                f"{c.campaign}: {c.enrolled} enrolled ({c.holdout} holdout), {c.journeys} journeys advanced, "
                f"{c.sends} sends ({outcomes}) in {c.seconds:.2f}s"
            )
        for path, reason in report.refused.items():
            typer.echo(f"{path}: refused: {reason}", err=True)
    raise typer.Exit(1 if report.refused else 0)


@app.command()
def status(
    campaign: Annotated[str, typer.Argument(help="campaign id")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Per-node funnel, exits by reason, sends by outcome."""
    from orchestrator.service import status as get_status

    figures = get_status(_context(), campaign)
    if as_json:
        typer.echo(json.dumps(figures, indent=2))
        return
    typer.echo(f"campaign {campaign}")
    typer.echo(
        f"{'node':<24}{'entered':>9}{'sent':>8}{'deliv.':>8}{'conv.':>8}{'no conv.':>10}{'deferred':>10}"
    )
    for node, m in sorted(figures["nodes"].items()):
        typer.echo(
            f"{node:<24}{m.get('entered', 0):>9}{m.get('sent', 0):>8}{m.get('delivered', 0):>8}"
            f"{m.get('converted', 0):>8}{m.get('no_convert', 0):>10}{m.get('deferred', 0):>10}"
        )
    typer.echo(
        "journeys: "
        + (", ".join(f"{k} {v}" for k, v in sorted(figures["journeys"].items())) or "none")
    )
    typer.echo(
        "exits: " + (", ".join(f"{k} {v}" for k, v in sorted(figures["exits"].items())) or "none")
    )
    typer.echo(
        "sends: " + (", ".join(f"{k} {v}" for k, v in sorted(figures["sends"].items())) or "none")
    )


@app.command()
def simulate(
    file: Annotated[Path, typer.Argument(help="a campaign file")],
    subscribers: Annotated[int, typer.Option("--subscribers", min=1, max=2_000_000)] = 1000,
    population: Annotated[
        Path | None, typer.Option("--population", help="JSONL population")
    ] = None,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    rate: Annotated[
        list[str] | None, typer.Option("--rate", help="NODE=P conversion probability")
    ] = None,
    default_rate: Annotated[float, typer.Option("--default-rate", min=0.0, max=1.0)] = 0.1,
    start: Annotated[
        str | None, typer.Option("--start", help="ISO start (default 2026-01-05T09:00Z)")
    ] = None,
    until: Annotated[str | None, typer.Option("--until", help="stop at this ISO time")] = None,
    trace: Annotated[
        Path | None, typer.Option("--trace", help="write the JSONL trace here")
    ] = None,
    resolution: Annotated[
        str,
        typer.Option("--resolution", help="virtual tick interval (the schedule's, e.g. 5m, 1h)"),
    ] = "5m",
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Run the real engine on a virtual clock until every journey has ended; print the funnel."""
    from orchestrator.errors import CampaignError
    from orchestrator.simulate import simulate as run

    rates: dict[str, float] = {}
    for item in rate or []:
        node, sep, value = item.partition("=")
        try:
            rates[node] = float(value)
            assert sep and 0 <= rates[node] <= 1
        except (ValueError, AssertionError):
            typer.echo(f"--rate {item!r}: expected NODE=P with P between 0 and 1", err=True)
            raise typer.Exit(1) from None
    try:
        result = run(
            file,
            subscribers=subscribers,
            population=population,
            seed=seed,
            rates=rates,
            default_rate=default_rate,
            start=_now(start or "2026-01-05T09:00:00Z"),
            until=_now(until) if until else None,
            trace=trace,
            resolution=_duration(resolution, "--resolution"),
        )
    except CampaignError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    figures = result.as_dict()
    if as_json:
        typer.echo(json.dumps(figures, indent=2))
        return
    _print_funnel(figures)
    typer.echo(
        f"{result.subscribers} subscribers, {result.ticks} ticks from {result.start:%Y-%m-%d %H:%M} "
        f"to {result.end:%Y-%m-%d %H:%M}, {result.steps} journey steps in {result.seconds:.1f}s "
        f"({figures['steps_per_s']} steps/s), {result.unfinished} unfinished"
    )


def _duration(text: str, option: str) -> timedelta:
    from orchestrator.spec import parse_duration

    try:
        value = parse_duration(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint=option) from None
    if value <= timedelta(0):
        raise typer.BadParameter("must be longer than zero", param_hint=option)
    return value


def _print_funnel(figures: dict[str, Any]) -> None:
    typer.echo(
        f"{'node':<24}{'entered':>9}{'sent':>8}{'deliv.':>8}{'conv.':>8}{'no conv.':>10}{'deferred':>10}"
    )
    for node, m in sorted(figures["nodes"].items()):
        typer.echo(
            f"{node:<24}{m.get('entered', 0):>9}{m.get('sent', 0):>8}{m.get('delivered', 0):>8}"
            f"{m.get('converted', 0):>8}{m.get('no_convert', 0):>10}{m.get('deferred', 0):>10}"
        )
    typer.echo(
        "exits: " + (", ".join(f"{k} {v}" for k, v in sorted(figures["exits"].items())) or "none")
    )


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
    from orchestrator.errors import ConfigurationError
    from orchestrator.service import export_segment

    if fmt not in ("csv", "jsonl"):
        raise typer.BadParameter("csv or jsonl", param_hint="--format")
    out = output.open("w", encoding="utf-8", newline="") if output else sys.stdout
    try:
        count = export_segment(
            _context(), name=name, campaign=campaign, fmt=fmt, out=out, now=_now(now)
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
    from orchestrator.errors import ConfigurationError
    from orchestrator.service import segment_overlap

    try:
        names, counts = segment_overlap(_context(), campaign=campaign, now=_now(now))
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
    from orchestrator import versions
    from orchestrator.errors import CampaignError

    ctx = _context()
    try:
        migration = versions.plan(ctx, campaign)
    except CampaignError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
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
        versions.apply(ctx, migration, now=_now(now))


@app.command()
def deploy(
    campaigns: Annotated[
        list[str] | None, typer.Argument(help="campaign file stems (default: all)")
    ] = None,
    pool: Annotated[
        str | None, typer.Option("--pool", help="Prefect work pool for the runs")
    ] = None,
    serve: Annotated[
        bool,
        typer.Option("--serve", help="run the schedules in this process (one machine, no workers)"),
    ] = False,
    prefect_yaml: Annotated[
        Path | None,
        typer.Option("--prefect-yaml", help="write the deployments as a prefect.yaml instead"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Register one scheduled Prefect deployment per campaign (its settings.schedule, concurrency 1)."""
    from orchestrator.config import load_config

    graphs = load_config().graphs
    if prefect_yaml is not None:
        from flows.deploy import prefect_yaml as render_yaml

        prefect_yaml.write_text(render_yaml(graphs, pool=pool or "campaign-flow"), encoding="utf-8")
        typer.echo(f"wrote {prefect_yaml}")
        return
    if serve:
        from flows.deploy import serve as serve_deployments

        if pool:
            typer.echo(
                "--serve runs the deployments here; --pool hands them to workers: pick one",
                err=True,
            )
            raise typer.Exit(2)
        serve_deployments(graphs, campaigns or None)
        return
    from flows.deploy import apply

    result = apply(graphs, campaigns or None, pool=pool)
    if as_json:
        typer.echo(json.dumps(result, indent=2))
    else:
        for name, ident in result["deployments"].items():
            typer.echo(f"deployed campaign-tick/{name} ({ident})")
        for path, reason in result["refused"].items():
            typer.echo(f"{path}: not deployed: {reason}", err=True)
    raise typer.Exit(1 if result["refused"] else 0)


def _quiet_prefect() -> None:
    """Before prefect is imported: no run logs or telemetry on our terminal."""
    import os

    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "CRITICAL")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_TO_API_ENABLED", "false")
    # The first start of the ephemeral API migrates its database: more than the default 20 s
    # on a busy 2-core machine.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")


@app.command()
def demo(
    subscribers: Annotated[
        int, typer.Option("--subscribers", min=10, max=20_000, help="per campaign")
    ] = 400,
    workdir: Annotated[Path, typer.Option("--workdir")] = Path("out/demo"),
) -> None:
    """The main job on the example campaigns: Prefect walks synthetic subscribers through every
    flowchart on a fast-forward clock, sending real encrypted pushes to a local push service."""
    _quiet_prefect()
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from flows.demo import demo_flow, demo_start, quiet_prefect

    quiet_prefect()
    total_days = 35
    start = demo_start()
    with Progress(
        TextColumn("[bold]simulated time[/] {task.fields[now]}"),
        BarColumn(),
        TimeElapsedColumn(),
        disable=not sys.stdout.isatty(),
        transient=True,
    ) as bar:
        job = bar.add_task("walk", total=total_days * 24, now=start.strftime("%Y-%m-%d %H:%M"))

        def progress(now: datetime) -> None:
            hours = (now - start).total_seconds() / 3600
            bar.update(
                job, completed=min(hours, total_days * 24), now=now.strftime("%Y-%m-%d %H:%M")
            )

        result = demo_flow(
            workdir=str(workdir), per_campaign=subscribers, progress=progress, start=start
        )
    for campaign, figures in result["funnels"].items():
        typer.echo(f"\n== {campaign}")
        _print_funnel(figures)
    received = result["receiver"]
    typer.echo(
        f"\n{result['subscribers']} subscribers walked in {result['steps']} virtual ticks; "
        f"the local push service received and checked {received.get('delivered', 0)} encrypted notifications "
        f"(decrypted {received.get('decrypted', 0)})."
    )
    typer.echo(f"Report with the flowcharts and live counts: {result['report']}")
    typer.echo(
        "The dashboard on the same data: "
        f"CAMPAIGN_DB={result['db']} CAMPAIGN_DASHBOARD_PASSWORD=demo "
        f"CAMPAIGN_VAPID_PRIVATE_KEY={Path(workdir) / 'vapid_private.pem'} "
        ".venv/bin/campaign serve, then http://127.0.0.1:8000 (password: demo)."
    )
    typer.echo(
        "The same runs in the Prefect UI: run `.venv/bin/prefect server start` and open "
        'http://127.0.0.1:4200 (flow "campaign-demo", one task run per campaign tick; '
        "artifacts: each campaign's flowchart and funnel)."
    )


@app.command()
def bench(
    sends: Annotated[int, typer.Option("--sends", min=100, max=1_000_000)] = 5000,
    latency_ms: Annotated[float, typer.Option("--latency-ms", min=0)] = 25.0,
    prefect: Annotated[
        bool, typer.Option("--prefect/--no-prefect", help="also the tick through the Prefect flow")
    ] = True,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Delivery throughput: naive pywebpush loop vs bare encrypt+POST vs the full tick pipeline,
    and the same tick run directly and as the Prefect flow."""
    if prefect:
        _quiet_prefect()
    from orchestrator.bench import bench as run

    _print_figures(run(sends=sends, latency_ms=latency_ms, with_prefect=prefect), as_json=as_json)


@app.command("bench-scale")
def bench_scale(
    subscribers: Annotated[int, typer.Option("--subscribers", min=100, max=5_000_000)] = 100_000,
    db: Annotated[
        str | None, typer.Option("--db", help="database URL (default: a fresh SQLite file)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Import, enrolment, a full tick and an idle tick at scale."""
    from orchestrator.bench_scale import bench_scale as run

    _print_figures(run(subscribers=subscribers, db_url=db), as_json=as_json)


@app.command("bench-web")
def bench_web(
    seconds: Annotated[float, typer.Option("--seconds", min=1, max=3600)] = 60.0,
    concurrency: Annotated[int, typer.Option("--concurrency", min=1, max=1024)] = 64,
    workers: Annotated[int, typer.Option("--workers", min=1, max=16)] = 1,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """POST /api/subscriptions, then POST /api/events, held for --seconds each against
    `campaign serve`; then checks every accepted request is stored exactly once."""
    from orchestrator.bench_web import bench_web as run

    figures = run(seconds=seconds, concurrency=concurrency, workers=workers)
    _print_figures(figures, as_json=as_json)
    if figures["lost_or_doubled"]:
        raise typer.Exit(1)


def _print_figures(figures: dict[str, Any], *, as_json: bool) -> None:
    """A benchmark's figures: one JSON object (the interfaces spec), or aligned lines."""
    if as_json:
        typer.echo(json.dumps(figures))
        return
    width = max(len(key) for key in figures)
    for key, value in figures.items():
        typer.echo(f"{key:>{width}}: {value}")


@app.command()
def serve(
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535)] = 8000,
    workers: Annotated[int, typer.Option("--workers", min=1, max=64)] = 1,
) -> None:
    """The HTTP service and dashboard (FastAPI; OpenAPI at /docs)."""
    import uvicorn

    from orchestrator.config import load_config

    config = load_config()
    if not (config.dashboard_password or config.api_key):
        typer.echo(
            "note: no CAMPAIGN_DASHBOARD_PASSWORD or CAMPAIGN_API_KEY: the dashboard and "
            "POST /api/events stay closed until one is set",
            err=True,
        )
    typer.echo(f"campaign-flow on http://{host}:{port} (dashboard /, API docs /docs)", err=True)
    uvicorn.run(
        "orchestrator.web:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="warning",
        proxy_headers=True,
    )


vapid_app = typer.Typer(help="The VAPID key pair that signs every push.", no_args_is_help=True)
app.add_typer(vapid_app, name="vapid")


@vapid_app.command("init")
def vapid_init(
    path: Annotated[
        Path | None,
        typer.Option(
            "--path",
            help="where to write the PEM (default: CAMPAIGN_VAPID_PRIVATE_KEY or vapid_private.pem)",
        ),
    ] = None,
) -> None:
    """Make a VAPID key pair; print the public key (the applicationServerKey for subscribe.js)."""
    from orchestrator.config import load_config
    from orchestrator.push.vapid import VapidKey

    target = path or Path(load_config().vapid_private_key)
    if target.exists():
        typer.echo(
            f"error: {target} exists; refusing to overwrite a key subscriptions depend on", err=True
        )
        raise typer.Exit(1)
    key = VapidKey.generate()
    key.save(target)
    typer.echo(f"wrote {target} (mode 0600)", err=True)
    typer.echo(key.public_key_b64())


def main() -> None:
    app()


if __name__ == "__main__":
    main()
