"""The Prefect edge: the tick flow, the demo flow, deployments (the only package that
imports Prefect; thin over `orchestrator.app`)."""

# The modules other code may import (tick: the deployments' entrypoint).
__all__ = ["bench", "demo", "deploy", "local_server", "tick"]
