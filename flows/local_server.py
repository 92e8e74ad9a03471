"""A throwaway `prefect server start` on a free loopback port, for tests and scripts.

The server keeps its database under `home` (PREFECT_HOME) and, with `ui=True`,
serves its UI with the API address the browser must call (PREFECT_UI_API_URL).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from orchestrator.testing.ports import free_port


@contextmanager
def local_prefect_server(home: Path, *, ui: bool = False, seconds: float = 120) -> Iterator[str]:
    """Starts the server, yields its API URL once `/health` answers, stops it after.

    RuntimeError when it does not answer within `seconds`."""
    home.mkdir(parents=True, exist_ok=True)
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {
        **os.environ,
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_UI_ENABLED": "true" if ui else "false",
        "PREFECT_UI_API_URL": api,
    }
    env.pop("PREFECT_API_URL", None)
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "prefect"),
            "server",
            "start",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + seconds
        while True:
            with contextlib.suppress(httpx.HTTPError):  # not listening yet
                if httpx.get(f"{api}/health", timeout=1).status_code == 200:
                    break
            if proc.poll() is not None:
                raise RuntimeError(f"prefect server exited with {proc.returncode} at start")
            if time.monotonic() > deadline:
                raise RuntimeError(f"prefect server did not answer within {seconds:.0f} s")
            time.sleep(0.5)
        yield api
    finally:
        stop(proc)


def stop(proc: subprocess.Popen[Any]) -> None:
    """SIGTERM, then SIGKILL after 30 s: a Prefect server or worker busy on a loaded machine
    may not finish its graceful shutdown in time, and whoever stops it is done with it."""
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=30)
