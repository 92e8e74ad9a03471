"""The `campaign` app and what its command modules share: context, clock, printing."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import typer
from typer.core import TyperGroup

from orchestrator.errors import CampaignError


class _Commands(TyperGroup):
    """The one place errors become exit codes, for `campaign` and for tests that invoke the
    app alike: an error of ours (`CampaignError`, the root of every error the project raises
    on purpose) or of the database ends in one line on stderr and exit status 1, never a
    traceback, whichever command met it. Commands exit with other codes themselves only
    where their contract says so (`validate`: 2 for a file that cannot be read;
    `subscribers import`: 1 when some line was bad)."""

    def invoke(self, ctx: Any) -> Any:  # typer.core types it with its private click
        try:
            return super().invoke(ctx)
        except CampaignError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None
        except Exception as exc:
            from orchestrator.store import failures

            if not failures.is_database_error(exc):
                raise
            typer.echo(
                f"error: the database failed ({failures.reason(exc)}); what was committed is kept",
                err=True,
            )
            raise typer.Exit(1) from None


app = typer.Typer(
    name="campaign",
    help="Push-notification campaigns drawn as flowcharts in YAML.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    cls=_Commands,
)


def open_cli_context(**kwargs: Any) -> Any:
    from orchestrator.app.service import open_context

    return open_context(**kwargs)


def now_option(value: str | None) -> datetime:
    from orchestrator.language.records import RecordError, parse_time

    if value is None:
        return datetime.now(UTC)
    try:
        return parse_time(value, "--now")
    except RecordError as exc:
        raise typer.BadParameter(str(exc)) from None


_NUMBER_LIKE = re.compile(
    r"\A[-+]?(?:nan|inf(?:inity)?|\d+(?:\.\d*)?(?:e[-+]?\d+)?|\.\d+(?:e[-+]?\d+)?)\Z", re.I
)


def scalar_option(text: str, where: str) -> Any:
    """A command-line value: a JSON number, boolean or string as such, anything else as text.
    Something that looks like a number but is not a finite JSON one is refused."""
    from orchestrator.language.records import RecordError, loads

    try:
        value = loads(text, where)
    except RecordError:
        if _NUMBER_LIKE.fullmatch(text.strip()):
            raise RecordError(
                f"{where}={text[:40]}: not a finite JSON number within ±2^53 "
                "(quote it inside the value to store it as text)"
            ) from None
        return text
    return value if isinstance(value, int | float | bool | str) else text


def duration_option(text: str, option: str) -> timedelta:
    from orchestrator.language.spec import parse_duration

    try:
        value = parse_duration(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint=option) from None
    if value <= timedelta(0):
        raise typer.BadParameter("must be longer than zero", param_hint=option)
    return value


def print_funnel(figures: dict[str, Any], *, totals: tuple[str, ...] = ("exits",)) -> None:
    """The per-node table, then one line per total (exits, journeys, sends: by kind)."""
    typer.echo(
        f"{'node':<24}{'entered':>9}{'sent':>8}{'deliv.':>8}{'conv.':>8}{'no conv.':>10}{'deferred':>10}"
    )
    for node, m in sorted(figures["nodes"].items()):
        typer.echo(
            f"{node:<24}{m.get('entered', 0):>9}{m.get('sent', 0):>8}{m.get('delivered', 0):>8}"
            f"{m.get('converted', 0):>8}{m.get('no_convert', 0):>10}{m.get('deferred', 0):>10}"
        )
    for name in totals:
        counts = sorted(figures[name].items())
        typer.echo(f"{name}: " + (", ".join(f"{k} {v}" for k, v in counts) or "none"))


def quiet_prefect_logs() -> None:
    """Before prefect is imported: no run logs or telemetry on our terminal."""
    import os

    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "CRITICAL")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_TO_API_ENABLED", "false")
    # The first start of the ephemeral API migrates its database: more than the default 20 s
    # on a busy 2-core machine.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")


def print_figures(figures: dict[str, Any], *, as_json: bool) -> None:
    """A benchmark's figures: one JSON object (the interfaces spec), or aligned lines."""
    if as_json:
        typer.echo(json.dumps(figures))
        return
    width = max(len(key) for key in figures)
    for key, value in figures.items():
        typer.echo(f"{key:>{width}}: {value}")


def installed_command(name: str) -> str:
    """How to run the command `name` of this installation, for hints: its bare name when
    the shell finds this very one on PATH, else its path (relative to the working folder
    when inside it, as `.venv/bin/campaign` in a checkout)."""
    import shutil
    import sys
    from pathlib import Path

    ours = Path(sys.executable).parent / name
    found = shutil.which(name)
    if found and Path(found).resolve() == ours.resolve():
        return name
    try:
        return str(ours.relative_to(Path.cwd()))
    except ValueError:
        return str(ours)
