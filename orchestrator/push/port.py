"""What the tick hands its sends to. The real Web Push sender lives in `orchestrator.push`."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass
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
    # delivered | gone | rate_limited | failed | vapid_rejected | payload_error | rejected
    # | disallowed | error (an unexpected exception for this send: detail `TypeName: message`)
    outcome: str
    status_code: int | None = None
    detail: str | None = None
    gone_endpoints: tuple[str, ...] = ()


def describe(exc: BaseException, limit: int = 500) -> str:
    """`TypeName: message` (the message's first line, bounded): how an unexpected exception
    is recorded as one send's outcome detail or one campaign's failure."""
    lines = str(exc).strip().splitlines()
    return (f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__)[:limit]


class Delivery(Protocol):
    def deliver(self, requests: Sequence[SendRequest]) -> list[SendOutcome]: ...


def submit(delivery: Delivery, requests: Sequence[SendRequest]) -> Future[list[SendOutcome]]:
    """Start delivering and return at once when the delivery can (the real push client
    sends from its own thread); otherwise deliver now and hand back the finished result.
    Either way a failure to deliver is the future's exception, raised where it is awaited."""
    start = getattr(delivery, "submit", None)
    done: Future[list[SendOutcome]] = Future()
    if start is not None and requests:
        try:
            future: Future[list[SendOutcome]] = start(requests)
        except Exception as exc:
            done.set_exception(exc)
            return done
        return future
    try:
        done.set_result(delivery.deliver(requests) if requests else [])
    except BaseException as exc:  # re-raised by .result(), where the caller waits
        done.set_exception(exc)
    return done
