"""Fakes of the project's ports for tests, simulation and benchmarks."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from orchestrator.delivery import Outcome, SendOutcome, SendRequest


@dataclass
class RecordingDelivery:
    """A fake for tests and simulation: keeps every request, answers 'delivered'."""

    requests: list[SendRequest] = field(default_factory=list)

    def deliver(self, requests: Sequence[SendRequest]) -> list[SendOutcome]:
        self.requests.extend(requests)
        return [SendOutcome(r.send_id, Outcome.DELIVERED, 201) for r in requests]
