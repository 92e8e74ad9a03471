"""Commands on campaign files: validate, schema, render."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from orchestrator.cli.common import (
    app,
    open_cli_context,
)
from orchestrator.errors import UnreadableFileError


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
    from orchestrator.language import loader
    from orchestrator.language.document import LoadedCampaign

    results: list[LoadedCampaign] = []
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
    from orchestrator.language.spec import json_schema

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
    from orchestrator.language import loader

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
        from orchestrator.app.service import drawing_counts, status as get_status

        ctx = open_cli_context()
        figures = drawing_counts(ctx, loaded.campaign)
        exits = get_status(ctx, loaded.campaign.campaign)["exits"]
    text = drawing.render(loaded.campaign, format.value, counts=figures, exits=exits)
    if output is None:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    else:
        output.write_text(text, encoding="utf-8")
        typer.echo(f"wrote {output}", err=True)


# ------------------------------------------------------------------ subscribers, events, ticks
