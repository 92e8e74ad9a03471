"""Wiring the real Web Push delivery from configuration.

`check_ready(config)` fails before any send when the VAPID subject or key is
missing; `WebPushDelivery` builds the client on first use, so commands that
never send (import, status, render) need no VAPID configuration at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

from orchestrator.config import Config
from orchestrator.delivery import SendOutcome, SendRequest
from orchestrator.errors import ConfigurationError
from orchestrator.push.client import ClientSettings, PushClient
from orchestrator.push.vapid import TokenCache, VapidKey, check_subject


def load_key(config: Config) -> VapidKey:
    value = config.vapid_private_key
    if "\n" not in value and len(value) < 200 and not value.startswith("-----"):
        path = Path(value)
        if not path.exists() and path.suffix in (".pem", ".key"):
            raise ConfigurationError(
                f"VAPID key file {value} does not exist: run `campaign vapid init` "
                "or set CAMPAIGN_VAPID_PRIVATE_KEY"
            )
    return VapidKey.load(value)


def check_ready(config: Config) -> tuple[VapidKey, str]:
    """The key and subject, or a ConfigurationError saying what to set."""
    subject = check_subject(config.vapid_subject)
    return load_key(config), subject


@dataclass
class WebPushDelivery:
    config: Config
    settings: ClientSettings = field(default_factory=ClientSettings)
    _client: PushClient | None = None

    def deliver(self, requests: Sequence[SendRequest]) -> list[SendOutcome]:
        return self.submit(requests).result()

    def submit(self, requests: Sequence[SendRequest]) -> Future[list[SendOutcome]]:
        return self._ready().submit(requests)

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
        if self._client is not None:
            self._client.close()
            self._client = None
