"""The `campaign` command line (typer). A thin edge: parse arguments, call, print, exit.

One module per group of commands; importing them registers their commands on `app`,
in the order `campaign --help` lists them. Those modules import only typer and the
standard library at the top; every command imports what it needs (the language's
pydantic models, SQLAlchemy, Prefect, the push client) inside its own body, so
`campaign --help` and a command's `--help` start without loading any of them."""

from __future__ import annotations

import logging

# isort: off
from orchestrator.cli.common import app
from orchestrator.cli import language  # noqa: F401
from orchestrator.cli import operations  # noqa: F401
from orchestrator.cli import experiments  # noqa: F401
from orchestrator.cli import measure  # noqa: F401
from orchestrator.cli import running  # noqa: F401

# isort: on


class _OneLine(logging.Formatter):
    """Log records as `warning: …` / `error: …` lines; an exception as its type and message
    (its traceback only with CAMPAIGN_DEBUG=1)."""

    def __init__(self, *, tracebacks: bool) -> None:
        super().__init__("%(levelname)s: %(message)s")
        self.tracebacks = tracebacks

    def format(self, record: logging.LogRecord) -> str:
        record.levelname = record.levelname.lower()
        if record.exc_info and not self.tracebacks:
            exc = record.exc_info[1]
            record = logging.makeLogRecord({**record.__dict__, "exc_info": None, "exc_text": None})
            if exc is not None and type(exc).__name__ not in record.getMessage():
                record.msg = f"{record.getMessage()} [{type(exc).__name__}: {exc}]"
                record.args = ()
        return super().format(record)


def _logging() -> None:
    """The project's own warnings and errors (`campaign.*` loggers) reach stderr as one
    line each; other libraries stay quiet unless they fail loudly."""
    import os

    handler = logging.StreamHandler()
    handler.setFormatter(_OneLine(tracebacks=os.environ.get("CAMPAIGN_DEBUG") == "1"))
    ours = logging.getLogger("campaign")
    ours.addHandler(handler)
    ours.setLevel(logging.WARNING)
    ours.propagate = False


def main() -> None:
    """`campaign`: logging set up, then the app (errors become exit codes in
    `common._Commands`)."""
    _logging()
    app()


__all__ = ["app", "main"]
