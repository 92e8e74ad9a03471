"""Running it: init, deploy (Prefect), demo, serve, vapid init."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from orchestrator.cli.common import (
    app,
    installed_command,
    open_cli_context,
    print_funnel,
    quiet_prefect_logs,
)


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
    """Register one scheduled Prefect deployment per campaign (its settings.schedule, concurrency 1);
    a paused or stopped campaign's deployment is registered paused."""
    from orchestrator.config import load_config

    graphs = load_config().graphs
    if prefect_yaml is not None:
        from flows.deploy import prefect_yaml as render_yaml

        prefect_yaml.write_text(render_yaml(graphs, pool=pool or "campaign-flow"), encoding="utf-8")
        typer.echo(f"wrote {prefect_yaml}")
        return
    held = _held_states()
    if serve:
        from flows.deploy import serve as serve_deployments

        if pool:
            typer.echo(
                "--serve runs the deployments here; --pool hands them to workers: pick one",
                err=True,
            )
            raise typer.Exit(2)
        serve_deployments(graphs, campaigns or None, held=held)
        return
    from flows.deploy import apply

    result = apply(graphs, campaigns or None, pool=pool, held=held)
    if as_json:
        typer.echo(json.dumps(result, indent=2))
    else:
        for name, ident in result["deployments"].items():
            state = result["paused"].get(name)
            note = f", paused: the campaign is {state}" if state else ""
            typer.echo(f"deployed campaign-tick/{name} ({ident}){note}")
        for path, reason in result["refused"].items():
            typer.echo(f"{path}: not deployed: {reason}", err=True)
    raise typer.Exit(1 if result["refused"] else 0)


def _held_states() -> Callable[[str], str | None]:
    """A campaign's state when it is paused or stopped, else None (`flows.deploy.Held`),
    from the campaign database."""
    from orchestrator.app import control

    ctx = open_cli_context()

    def held(campaign: str) -> str | None:
        state = control.state(ctx, campaign).state
        return None if state == control.RUNNING else state

    return held


@app.command()
def init(
    folder: Annotated[Path, typer.Argument(help="the project folder (made if missing)")] = Path(
        "."
    ),
) -> None:
    """Start a project: a campaigns folder with a first campaign, a `.env` and a VAPID key."""
    from orchestrator.cli.starter import env_file
    from orchestrator.language.starter import WELCOME
    from orchestrator.push.vapid import VapidKey

    graphs, env, key = folder / "campaign_graphs", folder / ".env", folder / "vapid_private.pem"
    campaign = graphs / "welcome.yaml"
    there = [str(p) for p in (campaign, env, key) if p.exists()]
    if there:
        typer.echo(f"error: already there, nothing written: {', '.join(there)}", err=True)
        raise typer.Exit(1)
    made = VapidKey.generate()
    try:
        graphs.mkdir(parents=True, exist_ok=True)
        campaign.write_text(WELCOME, encoding="utf-8")
        made.save(key)
        env.touch(mode=0o600)  # it holds the dashboard password and the API key
        env.write_text(
            env_file(graphs="campaign_graphs", key="vapid_private.pem"), encoding="utf-8"
        )
    except OSError as exc:
        typer.echo(f"error: cannot write the project in {folder}: {exc.strerror or exc}", err=True)
        raise typer.Exit(1) from None
    me = installed_command("campaign")
    where = "" if folder.resolve() == Path.cwd().resolve() else f"cd {folder} && "
    typer.echo(f"wrote {campaign}, {env} (settings, secrets) and {key} (the VAPID key)")
    typer.echo(f"applicationServerKey (for subscribe.js): {made.public_key_b64()}")
    typer.echo(
        "Next: set CAMPAIGN_VAPID_SUBJECT in .env to your contact, then\n"
        f"  {where}{me} validate campaign_graphs/\n"
        f"  {where}{me} simulate campaign_graphs/welcome.yaml\n"
        f"  {where}{me} serve        # the dashboard; its password is in .env"
    )


@app.command()
def demo(
    subscribers: Annotated[
        int, typer.Option("--subscribers", min=10, max=20_000, help="per campaign")
    ] = 400,
    workdir: Annotated[Path, typer.Option("--workdir")] = Path("out/demo"),
) -> None:
    """The main job on the example campaigns: Prefect walks synthetic subscribers through every
    flowchart on a fast-forward clock, sending real encrypted pushes to a local push service.

    The campaigns are those of CAMPAIGN_GRAPHS when it is set, else the examples shipped
    with campaign-flow, so the demo runs from any folder."""
    quiet_prefect_logs()
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from flows.demo import demo_flow, demo_start, quiet_prefect
    from orchestrator.config import graphs_setting
    from orchestrator.language import loader

    graphs = graphs_setting() or loader.EXAMPLES
    loader.campaigns_in(graphs)  # none: a clear error before anything starts
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
            workdir=str(workdir),
            graphs=str(graphs),
            per_campaign=subscribers,
            progress=progress,
            start=start,
        )
    for campaign, figures in result["funnels"].items():
        typer.echo(f"\n== {campaign}")
        print_funnel(figures)
    received = result["receiver"]
    typer.echo(
        f"\n{result['subscribers']} subscribers walked in {result['steps']} virtual ticks; "
        f"the local push service received and checked {received.get('delivered', 0)} encrypted notifications "
        f"(decrypted {received.get('decrypted', 0)})."
    )
    typer.echo(f"Report with the flowcharts and live counts: {result['report']}")
    typer.echo(
        "The dashboard on the same data: "
        f"CAMPAIGN_DB={result['db']} CAMPAIGN_GRAPHS={_shown(graphs)} CAMPAIGN_DASHBOARD_PASSWORD=demo "
        f"CAMPAIGN_VAPID_PRIVATE_KEY={Path(workdir) / 'vapid_private.pem'} "
        f"{installed_command('campaign')} serve, then http://127.0.0.1:8000 (password: demo)."
    )
    typer.echo(
        f"The same runs in the Prefect UI: run `{installed_command('prefect')} server start` "
        'and open http://127.0.0.1:4200 (flow "campaign-demo", one task run per campaign '
        "tick; artifacts: each campaign's flowchart and funnel)."
    )


def _shown(folder: Path) -> str:
    """A campaigns folder as a hint shows it: `campaign_graphs` when that is the same folder
    (a checkout: the shipped examples are a link to it), else relative to here if inside."""
    if Path("campaign_graphs").resolve() == folder.resolve():
        return "campaign_graphs"
    try:
        return str(folder.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(folder)


@app.command()
def serve(
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535)] = 8000,
    workers: Annotated[int, typer.Option("--workers", min=1, max=64)] = 1,
) -> None:
    """The HTTP service and dashboard (FastAPI; OpenAPI at /docs)."""
    from orchestrator.config import load_config
    from orchestrator.web.serve import serve as run

    config = load_config()
    if not config.dashboard_password:
        typer.echo(
            "note: no CAMPAIGN_DASHBOARD_PASSWORD: the dashboard stays closed until it is set",
            err=True,
        )
    if not config.api_key:
        typer.echo(
            "note: no CAMPAIGN_API_KEY: POST /api/events stays closed until it is set",
            err=True,
        )
    typer.echo(f"campaign-flow on http://{host}:{port} (dashboard /, API docs /docs)", err=True)
    run(host=host, port=port, workers=workers)


@app.command()
def studio(
    path: Annotated[
        Path | None, typer.Argument(help="campaigns folder (default: CAMPAIGN_GRAPHS)")
    ] = None,
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535)] = 8100,
    open_browser: Annotated[bool, typer.Option("--open", help="open it in a browser")] = False,
) -> None:
    """The authoring studio: edit campaign files with live diagnostics and the flowchart."""
    import webbrowser

    from orchestrator.config import load_config
    from orchestrator.errors import ConfigurationError
    from orchestrator.web.serve import serve_studio

    config = load_config()
    folder = path if path is not None else config.graphs
    if not folder.is_dir():
        raise ConfigurationError(f"{folder}: not a folder of campaign files")
    password = config.dashboard_password or None
    loopback = host in ("127.0.0.1", "localhost", "::1")
    if not loopback and password is None:
        raise ConfigurationError(
            f"--host {host}: the studio writes files; on another address than 127.0.0.1 it "
            "needs CAMPAIGN_DASHBOARD_PASSWORD (asked by the browser, any user name)"
        )
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{port}/"
    typer.echo(f"campaign studio over {folder} on {url}", err=True)
    if open_browser:
        webbrowser.open(url)
    import threading

    opened: list[Any] = []
    opening = threading.Lock()

    def database() -> Any:  # opened on first use: the studio edits files without one
        from orchestrator.studio.workspace import StudioError

        with opening:
            if not opened:
                from orchestrator.app.service import open_context

                local = config.db.removeprefix("sqlite:///")
                if config.db.startswith("sqlite:///") and not Path(local).exists():
                    raise StudioError(f"no database at {local} yet (CAMPAIGN_DB)")
                opened.append(open_context(config))
        return opened[0]

    serve_studio(
        folder,
        host=host,
        port=port,
        password=None if loopback else password,
        context=database,
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
