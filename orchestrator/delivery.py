"""What the tick hands its sends to. The real Web Push sender lives in `orchestrator.push`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Protocol


@dataclass(frozen=True)
class Target:
    """One push subscription of the subscriber."""

    endpoint: str
    p256dh: str
    auth: str


@dataclass(frozen=True)
class SendRequest:
    send_id: int
    journey_id: int
    step: int
    campaign: str
    node: str
    subscriber_id: str
    payload: bytes
    targets: tuple[Target, ...]
    ttl: timedelta
    urgency: str
    topic: str  # same for a retried send, so the push service replaces rather than duplicates


@dataclass(frozen=True)
class SendOutcome:
    send_id: int
    outcome: str  # delivered | failed | gone | payload_error | rejected
    status_code: int | None = None
    detail: str | None = None
    gone_endpoints: tuple[str, ...] = ()


class Delivery(Protocol):
    def deliver(self, requests: Sequence[SendRequest]) -> list[SendOutcome]: ...


@dataclass
class RecordingDelivery:
    """A fake for tests and simulation: keeps every request, answers 'delivered'."""

    requests: list[SendRequest] = field(default_factory=list)

    def deliver(self, requests: Sequence[SendRequest]) -> list[SendOutcome]:
        self.requests.extend(requests)
        return [SendOutcome(r.send_id, "delivered", 201) for r in requests]
