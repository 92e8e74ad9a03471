"""A free TCP port on loopback for a server a test or a benchmark starts, and waiting
until that server answers."""

from __future__ import annotations

import socket
import time

import httpx


def free_port() -> int:
    """A port nothing listens on now (the OS picks it; another process could take it
    before the caller binds it, which on loopback in a test run does not happen)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until_answering(url: str, *, seconds: float = 30.0) -> None:
    """Return once GET `url` answers 200 (a server just started); RuntimeError after
    `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass  # not listening yet
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {seconds:.0f} s")
