"""Simulation and benchmarks: simulate, bench, bench-scale, bench-throttle, bench-experiments,
bench-web, bench-studio."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from orchestrator.cli.common import (
    app,
    duration_option,
    now_option,
    print_figures,
    print_funnel,
    quiet_prefect_logs,
)

LAST_SIMULATED_YEAR = 9000  # room for a campaign's delays after the last start


@app.command()
def simulate(
    files: Annotated[
        list[Path],
        typer.Argument(
            help="a campaign file; several files or a folder (its *.yaml by name) run "
            "together as a programme, in this order"
        ),
    ],
    subscribers: Annotated[int, typer.Option("--subscribers", min=1, max=2_000_000)] = 1000,
    population: Annotated[
        Path | None, typer.Option("--population", help="JSONL population")
    ] = None,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    rate: Annotated[
        list[str] | None,
        typer.Option(
            "--rate",
            help="NODE=P conversion probability (CAMPAIGN.NODE=P for one campaign's node)",
        ),
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
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            min=1,
            max=64,
            help="processes (default: 1 below 4,000 subscribers, else 2); the population is "
            "split by subscriber",
        ),
    ] = None,
    repeat_days: Annotated[
        int,
        typer.Option(
            "--repeat-days",
            min=0,
            max=365,
            help="synthetic subscribers repeat their trigger events and send the exit_on "
            "events over this many days (0: one trigger event each)",
        ),
    ] = 0,
    active_hours: Annotated[
        bool,
        typer.Option(
            "--active-hours",
            help="synthetic subscribers convert mostly in a few local hours of their own "
            "(send-time optimisation's test bed)",
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Run the real engine on a virtual clock until every journey has ended; print the funnel.
    Several campaigns share the clock, the population and the frequency cap; the programme
    lines follow their funnels (exit 1 if its checks find a violation)."""
    from orchestrator.sim.simulate import campaign_files, simulate_programme

    rates: dict[str, float] = {}
    for item in rate or []:
        node, sep, value = item.partition("=")
        try:
            rates[node] = float(value)
            assert sep and 0 <= rates[node] <= 1
        except (ValueError, AssertionError):
            typer.echo(f"--rate {item!r}: expected NODE=P with P between 0 and 1", err=True)
            raise typer.Exit(1) from None
    begin = now_option(start or "2026-01-05T09:00:00Z")
    end = now_option(until) if until else None
    for option, moment in (("--start", begin), ("--until", end)):
        if moment is not None and moment.year > LAST_SIMULATED_YEAR:
            raise typer.BadParameter(
                f"a simulation ends by the year {LAST_SIMULATED_YEAR}", param_hint=option
            )
    result = simulate_programme(
        campaign_files(files),
        subscribers=subscribers,
        population=population,
        seed=seed,
        rates=rates,
        default_rate=default_rate,
        start=begin,
        until=end,
        trace=trace,
        resolution=duration_option(resolution, "--resolution"),
        workers=workers,
        repeat_days=repeat_days,
        active_hours=active_hours,
        files_only=True,
    )
    figures = result.as_dict()
    if as_json:
        typer.echo(json.dumps(figures, indent=2))
    elif len(result.campaigns) == 1:
        one = result.campaigns[0]
        print_funnel(figures)
        typer.echo(
            f"{one.subscribers} subscribers, {one.ticks} ticks from {one.start:%Y-%m-%d %H:%M} "
            f"to {one.end:%Y-%m-%d %H:%M}, {one.steps} journey steps in {one.seconds:.1f}s "
            f"({figures['steps_per_s']} steps/s), {one.unfinished} unfinished"
        )
        if "send_time" in figures:
            _print_send_time(figures["send_time"])
        if "experiments" in figures:
            from orchestrator.cli.experiments import print_experiments

            print_experiments(figures["experiments"])
    else:
        _print_programme(figures)
    if len(result.campaigns) > 1 and not figures["programme"]["ok"]:
        raise typer.Exit(1)


def _print_programme(figures: dict[str, Any]) -> None:
    """Each campaign's funnel and totals, then the programme's lines."""
    block = figures["programme"]
    for one in figures["campaigns"]:
        name = one["campaign"]
        typer.echo(f"== {name}")
        print_funnel(one)
        typer.echo(
            f"{one['sent']} sent, {one['conversions']} conversions, "
            f"{block['deferred_by_frequency_cap'][name]} deferred by the frequency cap, "
            f"{one['unfinished_journeys']} unfinished, "
            f"{block['invariant_violations'][name]} invariant violations"
        )
    week = block["sends_per_subscriber_week"]
    deferred = ", ".join(f"{k} {v}" for k, v in block["deferred_by_frequency_cap"].items())
    typer.echo(
        f"programme: {len(block['campaigns'])} campaigns, {block['subscribers']} subscribers, "
        f"{block['ticks']} ticks of {block['resolution']} from "
        f"{block['start'][:16].replace('T', ' ')} to {block['end'][:16].replace('T', ' ')}, "
        f"{block['steps']} journey steps in {block['seconds']:.1f}s, "
        f"{block['sent']} sent, {block['unfinished_journeys']} unfinished"
    )
    typer.echo(
        f"sends per subscriber per week: mean {week['mean']}, p50 {week['p50']}, "
        f"p95 {week['p95']}, max {week['max']} ({block['reached']} subscribers reached, "
        f"{block['weeks']} weeks)"
    )
    typer.echo(f"reached by more than one campaign: {block['reached_by_several']}")
    typer.echo(f"deferred by the frequency cap: {deferred}")
    typer.echo(
        f"checks: {sum(block['invariant_violations'].values())} invariant violations, "
        f"{block['frequency_cap_violations']} frequency-cap violations across campaigns"
    )
    for problem in block["problems"]:
        typer.echo(f"  {problem}")


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
        quiet_prefect_logs()
    from orchestrator.bench.throughput import bench as run

    if prefect:
        from flows.bench import prefect_leg

        figures = run(sends=sends, latency_ms=latency_ms, prefect_leg=prefect_leg)
    else:
        figures = run(sends=sends, latency_ms=latency_ms)
    print_figures(figures, as_json=as_json)


@app.command("bench-scale")
def bench_scale(
    subscribers: Annotated[int, typer.Option("--subscribers", min=100, max=5_000_000)] = 100_000,
    db: Annotated[
        str | None, typer.Option("--db", help="database URL (default: a fresh SQLite file)")
    ] = None,
    simulate_subscribers: Annotated[
        int,
        typer.Option(
            "--simulate-subscribers",
            min=0,
            max=5_000_000,
            help="then simulate the example campaign over this many subscribers (0: skip)",
        ),
    ] = 100_000,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Import, enrolment, a full tick and an idle tick at scale; then journey steps per
    second of `campaign simulate` (cloud-storage-launch, 1-hour resolution)."""
    from orchestrator.bench.scale import bench_scale as run
    from orchestrator.language.loader import EXAMPLES

    figures = run(
        subscribers=subscribers,
        db_url=db,
        simulate_path=EXAMPLES / "cloud-storage-launch.yaml",
        simulate_subscribers=simulate_subscribers,
    )
    print_figures(figures, as_json=as_json)


@app.command("bench-throttle")
def bench_throttle(
    subscribers: Annotated[int, typer.Option("--subscribers", min=100, max=5_000_000)] = 20_000,
    rate: Annotated[
        str, typer.Option("--rate", help="the campaign's settings.rate_limit, e.g. 10000/min")
    ] = "10000/min",
    db: Annotated[
        str | None, typer.Option("--db", help="database URL (default: a fresh SQLite file)")
    ] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, max=100_000)] = 500,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """A launch to --subscribers under a rate limit, ticked on its schedule on a virtual
    clock: virtual minutes, sends, the most in any minute, wall seconds; exit 1 if a
    subscriber is not sent exactly once or a minute holds more than the limit."""
    from orchestrator.bench.throttle import bench_throttle as run
    from orchestrator.language.spec import parse_rate

    try:
        parse_rate(rate)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--rate") from None
    figures = run(subscribers=subscribers, rate=rate, db_url=db, batch_size=batch_size)
    print_figures(figures, as_json=as_json)
    if not figures["ok"]:
        raise typer.Exit(1)


@app.command("bench-experiments")
def bench_experiments(
    journeys: Annotated[int, typer.Option("--journeys", min=400, max=1_000_000)] = 20_000,
    seeds: Annotated[int, typer.Option("--seeds", min=10, max=100_000)] = 1_000,
    pipeline_seeds: Annotated[int, typer.Option("--pipeline-seeds", min=0, max=1_000)] = 10,
    bandit_journeys: Annotated[
        int, typer.Option("--bandit-journeys", min=0, max=1_000_000, help="0: no bandit run")
    ] = 20_000,
    bandit_weeks: Annotated[int, typer.Option("--bandit-weeks", min=1, max=52)] = 4,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Does an A/B test find a known lift (10 % against 12 %, simulated through the tick),
    and do A/A tests (through the tick, and --seeds binomial draws of two and three arms)
    declare a difference no more often than the stated 5 %? Does a bandit split (10 %
    against 14 %, --bandit-journeys signups over --bandit-weeks) lean to the better arm,
    and what does it gain over a 50/50 split? Exit 1 if not."""
    from orchestrator.bench.experiments import bench_experiments as run

    figures = run(
        journeys=journeys,
        seeds=seeds,
        pipeline_seeds=pipeline_seeds,
        bandit_journeys=bandit_journeys,
        bandit_weeks=bandit_weeks,
    )
    print_figures(figures, as_json=as_json)
    if not figures["ok"]:
        raise typer.Exit(1)


@app.command("bench-web")
def bench_web(
    seconds: Annotated[float, typer.Option("--seconds", min=1, max=3600)] = 60.0,
    concurrency: Annotated[int, typer.Option("--concurrency", min=1, max=1024)] = 64,
    workers: Annotated[int, typer.Option("--workers", min=1, max=16)] = 1,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """POST /api/subscriptions, then POST /api/events, held for --seconds each against
    `campaign serve`; then checks every accepted request is stored exactly once."""
    from orchestrator.bench.web import bench_web as run

    figures = run(seconds=seconds, concurrency=concurrency, workers=workers)
    print_figures(figures, as_json=as_json)
    if figures["lost_or_doubled"]:
        raise typer.Exit(1)


@app.command("bench-studio")
def bench_studio(
    edits: Annotated[int, typer.Option("--edits", min=10, max=100_000)] = 200,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """The studio's check-and-redraw round trip on the largest example, as typing makes
    it: p50/p95/max milliseconds over --edits checks, and the server's own share."""
    from orchestrator.bench.studio import bench_studio as run

    print_figures(run(edits=edits), as_json=as_json)


@app.command("bench-faults")
def bench_faults(
    sends: Annotated[int, typer.Option("--sends", min=100, max=1_000_000)] = 100_000,
    seed: Annotated[int, typer.Option("--seed")] = 1,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """A run against a push service answering 5 % 503, 2 % 429 (Retry-After), 1 % 410 after
    0–200 ms: every send must end delivered, pruned or failed, with nothing doubled."""
    from orchestrator.bench.faults import bench_faults as run

    figures = run(sends=sends, seed=seed)
    print_figures(figures, as_json=as_json)
    if not figures["ok"]:
        raise typer.Exit(1)


@app.command()
def soak(
    subscribers: Annotated[int, typer.Option("--subscribers", min=100, max=2_000_000)] = 100_000,
    graphs: Annotated[
        Path | None, typer.Option("--graphs", help="campaign folder (default: CAMPAIGN_GRAPHS)")
    ] = None,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    start: Annotated[str, typer.Option("--start", help="ISO start")] = "2026-01-05T09:00:00Z",
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Simulate every campaign of the folder over a large population until all journeys
    end; check every journey against the engine's invariants; report memory."""
    from orchestrator.config import load_config
    from orchestrator.sim.soak import soak as run

    figures = run(
        graphs or load_config().graphs,
        subscribers=subscribers,
        seed=seed,
        start=now_option(start),
    )
    print_figures(figures, as_json=as_json)
    if not figures["ok"]:
        raise typer.Exit(1)


def _print_send_time(figures: dict[str, Any]) -> None:
    """The optimiser's arms side by side and the lift of the best hour over at once."""
    for arm, shown in figures["arms"].items():
        rate = "-" if shown["rate"] is None else f"{shown['rate']:.1%}"
        typer.echo(f"send time {arm:>9}: {shown['sends']:>7,} sends, {rate} converted")
    lift = figures["lift"]
    if lift is not None:
        typer.echo(
            f"best over immediate: {lift['difference'] * 100:+.1f} points "
            f"(95 % interval {lift['low'] * 100:+.1f} to {lift['high'] * 100:+.1f})"
        )
