"""`campaign serve` and `campaign studio`: the apps under uvicorn, with request heads bounded."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import uvicorn

from orchestrator.app.service import Context
from orchestrator.web.guard import BoundedHttpTools


def serve(*, host: str, port: int, workers: int) -> None:
    """Serves `create_app()` (a context from the environment per worker process) until stopped.

    Behind a proxy, `X-Forwarded-*` from it are trusted (uvicorn's `proxy_headers`)."""
    uvicorn.run(
        "orchestrator.web:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="warning",
        proxy_headers=True,
        http=BoundedHttpTools,  # request heads bounded (431)
    )


def serve_studio(
    root: Path,
    *,
    host: str,
    port: int,
    password: str | None,
    context: Callable[[], Context] | None = None,
) -> None:
    """Serves the authoring studio over the campaign files under `root` until stopped."""
    from orchestrator.web.studio import LOOPBACK, create_studio_app

    shown = f"[{host}]" if ":" in host else host
    hosts = LOOPBACK if password is None else (*LOOPBACK, shown.lower())
    uvicorn.run(
        create_studio_app(root, password=password, hosts=hosts, context=context),
        host=host,
        port=port,
        log_level="warning",
        http=BoundedHttpTools,
    )
