"""Wiring the real Web Push delivery from configuration.

`vapid.check_ready(config)` fails before any send when the VAPID subject or key is
missing; `WebPushDelivery` builds the client on first use, so commands that
never send (import, status, render) need no VAPID configuration at all.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

from orchestrator.config import Config
from orchestrator.delivery import SendOutcome, SendRequest
from orchestrator.push.client import ClientSettings, PushClient
from orchestrator.push.processes import DeliveryProcesses
from orchestrator.push.vapid import TokenCache, check_ready

PROCESSES_FROM = 200  # requests in one batch from which it goes to the delivery processes


def default_processes() -> int:
    """Delivery processes when the configuration does not say: one per core beyond the
    tick's own, at most 4."""
    return max(0, min(4, (os.cpu_count() or 1) - 1))


@dataclass
class WebPushDelivery:
    """The real delivery. Batches of PROCESSES_FROM requests or more are encrypted and sent
    by `processes` child processes (`orchestrator.push.processes`), smaller ones here."""

    config: Config
    settings: ClientSettings = field(default_factory=ClientSettings)
    processes: int | None = None  # None: the configuration's, else default_processes()
    _client: PushClient | None = None
    _pool: DeliveryProcesses | None = None

    def deliver(self, requests: Sequence[SendRequest]) -> list[SendOutcome]:
        return self.submit(requests).result()

    def submit(self, requests: Sequence[SendRequest]) -> Future[list[SendOutcome]]:
        if len(requests) >= PROCESSES_FROM and self._process_count():
            return self._processes().submit(requests)
        return self._ready().submit(requests)

    def start(self) -> None:
        """Check the VAPID configuration and start the delivery processes now rather than on
        the first large batch (a benchmark's warm-up)."""
        self._ready()
        if self._process_count():
            self._processes().start(wait=True)

    def _process_count(self) -> int:
        if self.processes is None:
            configured = self.config.delivery_processes
            self.processes = default_processes() if configured is None else configured
        return self.processes

    def _processes(self) -> DeliveryProcesses:
        if self._pool is None:
            check_ready(self.config)  # a missing key or subject fails here, not in a child
            self._pool = DeliveryProcesses(self.config, self.settings, self._process_count())
        return self._pool

    def _ready(self) -> PushClient:
        if self._client is None:
            key, subject = check_ready(self.config)
            self._client = PushClient(
                tokens=TokenCache(key=key, subject=subject),
                allowed_origins=self.config.push_allowed_origins,
                settings=self.settings,
            )
        return self._client

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None
        if self._client is not None:
            self._client.close()
            self._client = None
