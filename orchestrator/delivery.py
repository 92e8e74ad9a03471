"""What the tick hands its sends to. The real Web Push sender lives in `orchestrator.push`."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
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


class Outcome(StrEnum):
    """What became of one send, as the send ledger records it.

    A delivery answers DELIVERED to GONE (`SendOutcome.outcome`). The ledger adds its own
    states around them: CLAIMED (committed, not yet answered), RETRY (to go out again at
    its `retry_at`; the push client also uses it between its own attempts) and SKIPPED
    (never built: a template error, a payload too large, a bad URL)."""

    DELIVERED = "delivered"  # 201: the push service took it
    RATE_LIMITED = "rate_limited"  # 429
    FAILED = "failed"  # 5xx, a timeout, a lost connection: transient
    VAPID_REJECTED = "vapid_rejected"  # 401/403: the push service refuses our VAPID token
    PAYLOAD_ERROR = "payload_error"  # 413, or the payload could not be encrypted
    REJECTED = "rejected"  # another 4xx, or a redirect (never followed)
    DISALLOWED = "disallowed"  # the endpoint is not on an allowed push service
    ERROR = "error"  # an unexpected exception for this send (detail `TypeName: message`)
    GONE = "gone"  # 404/410: the subscription no longer exists
    RETRY = "retry"
    CLAIMED = "claimed"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class SendOutcome:
    send_id: int
    outcome: Outcome
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
