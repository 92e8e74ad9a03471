"""`campaign serve`: the app under uvicorn, with request heads bounded."""

from __future__ import annotations

import uvicorn

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
