"""The `campaign` command line (typer). A thin edge: parse arguments, call, print, exit.

One module per group of commands; importing them registers their commands on `app`,
in the order `campaign --help` lists them."""

from __future__ import annotations

# isort: off
from orchestrator.cli._app import app
from orchestrator.cli import language  # noqa: F401
from orchestrator.cli import operations  # noqa: F401
from orchestrator.cli import measure  # noqa: F401
from orchestrator.cli import running  # noqa: F401

# isort: on


def main() -> None:
    app()


__all__ = ["app", "main"]
