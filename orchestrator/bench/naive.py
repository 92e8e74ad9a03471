"""The benchmark's baseline: a plain loop of `pywebpush.webpush()`, what a user would write
first (one request at a time, VAPID signed and the message encrypted anew each time).

Here because `orchestrator/push/` is the only place that imports pywebpush and does
delivery HTTP; `campaign bench` measures our pipeline against this.
"""

from __future__ import annotations

import time
from typing import Any

import pywebpush


def naive_sends_per_s(
    subscriptions: list[dict[str, Any]], *, key_pem: str, subject: str, payload: bytes
) -> float:
    """Send `payload` to each subscription in turn; sends per second."""
    started = time.perf_counter()
    for sub in subscriptions:
        pywebpush.webpush(
            subscription_info=sub,
            data=payload,
            vapid_private_key=key_pem,
            vapid_claims={"sub": subject},  # a fresh dict each time: pywebpush mutates it
            ttl=60,
            headers={"Content-Type": "application/octet-stream"},
        )
    return len(subscriptions) / (time.perf_counter() - started)
