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
    """Errors of ours and of the database end in one line on stderr and exit status 1,
    never a traceback, whichever command met them."""
    import sys

    from sqlalchemy.exc import DBAPIError

    from orchestrator.errors import CampaignError
    from orchestrator.push.processes import DeliveryProcessError

    try:
        app()
    except (CampaignError, DeliveryProcessError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
    except DBAPIError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
        print(f"error: the database failed ({reason}); what was committed is kept", file=sys.stderr)
        sys.exit(1)


__all__ = ["app", "main"]
