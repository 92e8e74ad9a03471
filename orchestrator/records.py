"""Validation of what comes in from outside: subscriber lines, push subscriptions, events.

Used by `campaign subscribers import`, `campaign events add` and the HTTP API,
so a record is judged the same way whichever door it came through.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from orchestrator import urls
from orchestrator.spec import check_timezone_name

SUBSCRIBER_ID_RE = re.compile(r"^[A-Za-z0-9_.@:+-]{1,128}$")
EVENT_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:-]{0,63}$")
MAX_ATTRIBUTES_BYTES = 16_384


class RecordError(ValueError):
    """A record that cannot be stored; the message says what and where."""


@dataclass(frozen=True)
class PushSubscriptionRecord:
    endpoint: str
    p256dh: str
    auth: str


@dataclass(frozen=True)
class SubscriberRecord:
    id: str
    timezone: str = "UTC"
    attributes: dict[str, Any] = field(default_factory=dict)
    tags: tuple[str, ...] = ()
    subscriptions: tuple[PushSubscriptionRecord, ...] = ()


@dataclass(frozen=True)
class EventRecord:
    subscriber_id: str
    name: str
    at: datetime
    properties: dict[str, Any] = field(default_factory=dict)
    send_id: int | None = None


def _b64url_decode(value: str) -> bytes:
    padded = value + "=" * (-len(value) % 4)
    return base64.urlsafe_b64decode(padded.encode("ascii"))


def parse_subscription(
    raw: Any, *, allowed: tuple[str, ...], where: str = "subscription"
) -> PushSubscriptionRecord:
    if not isinstance(raw, dict):
        raise RecordError(f"{where}: expected a PushSubscription object with endpoint and keys")
    endpoint = raw.get("endpoint")
    keys = raw.get("keys")
    if not isinstance(endpoint, str) or not endpoint:
        raise RecordError(f"{where}.endpoint: missing or not text")
    try:
        endpoint = urls.push_endpoint(endpoint, allowed)
    except urls.UrlError as exc:
        raise RecordError(f"{where}.endpoint: {exc}") from None
    if not isinstance(keys, dict):
        raise RecordError(f"{where}.keys: missing (needs p256dh and auth)")
    p256dh, auth = keys.get("p256dh"), keys.get("auth")
    if not isinstance(p256dh, str) or not isinstance(auth, str):
        raise RecordError(f"{where}.keys: p256dh and auth must be base64url text")
    try:
        point = _b64url_decode(p256dh)
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    except (ValueError, binascii.Error, UnicodeEncodeError):
        raise RecordError(
            f"{where}.keys.p256dh: not a P-256 public key (65-byte uncompressed point)"
        ) from None
    try:
        secret = _b64url_decode(auth)
    except (ValueError, binascii.Error, UnicodeEncodeError):
        raise RecordError(f"{where}.keys.auth: not base64url") from None
    if len(secret) != 16:
        raise RecordError(f"{where}.keys.auth: must be 16 bytes, got {len(secret)}")
    return PushSubscriptionRecord(endpoint=endpoint, p256dh=p256dh, auth=auth)


def check_subscriber_id(value: Any, where: str = "id") -> str:
    if not isinstance(value, str) or not SUBSCRIBER_ID_RE.match(value):
        raise RecordError(
            f"{where}: {value!r} is not a subscriber id (1-128 of letters, digits and _ . @ : + -)"
        )
    return value


def check_timezone(value: Any, where: str = "timezone") -> str:
    """The campaign language's timezone check, worded for a record."""
    try:
        return check_timezone_name(value)
    except ValueError as exc:
        raise RecordError(f"{where}: {exc}") from None


def parse_subscriber(
    raw: Any, *, allowed: tuple[str, ...], require_subscription: bool = False
) -> SubscriberRecord:
    if not isinstance(raw, dict):
        raise RecordError("expected a JSON object")
    unknown = set(raw) - {
        "id",
        "timezone",
        "attributes",
        "tags",
        "subscription",
        "subscriptions",
        "events",
    }
    if unknown:
        raise RecordError(f"unknown field(s): {', '.join(sorted(unknown))}")
    if "id" not in raw:
        raise RecordError("id: missing")
    sid = check_subscriber_id(raw["id"])
    tz = check_timezone(raw.get("timezone", "UTC"))
    attributes = raw.get("attributes", {})
    if not isinstance(attributes, dict) or not all(isinstance(k, str) for k in attributes):
        raise RecordError("attributes: expected an object")
    if len(repr(attributes)) > MAX_ATTRIBUTES_BYTES:
        raise RecordError(f"attributes: larger than {MAX_ATTRIBUTES_BYTES:,} bytes")
    tags = raw.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) and 0 < len(t) <= 64 for t in tags):
        raise RecordError("tags: expected a list of short texts")
    subs_raw: list[Any] = []
    if "subscription" in raw:
        subs_raw.append(raw["subscription"])
    if "subscriptions" in raw:
        if not isinstance(raw["subscriptions"], list):
            raise RecordError("subscriptions: expected a list")
        subs_raw.extend(raw["subscriptions"])
    subs = tuple(
        parse_subscription(
            s,
            allowed=allowed,
            where=f"subscriptions[{i}]" if "subscriptions" in raw else "subscription",
        )
        for i, s in enumerate(subs_raw)
    )
    if require_subscription and not subs:
        raise RecordError("subscription: missing")
    return SubscriberRecord(
        id=sid,
        timezone=tz,
        attributes=dict(attributes),
        tags=tuple(dict.fromkeys(tags)),
        subscriptions=subs,
    )


def parse_time(value: Any, where: str = "at") -> datetime:
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise RecordError(f"{where}: {value!r} is not an ISO 8601 time") from None
    else:
        raise RecordError(f"{where}: expected an ISO 8601 time")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def parse_event(raw: Any, *, default_at: datetime) -> EventRecord:
    if not isinstance(raw, dict):
        raise RecordError("expected a JSON object")
    unknown = set(raw) - {"subscriber", "name", "at", "properties", "send"}
    if unknown:
        raise RecordError(f"unknown field(s): {', '.join(sorted(unknown))}")
    sid = check_subscriber_id(raw.get("subscriber"), "subscriber")
    name = raw.get("name")
    if not isinstance(name, str) or not EVENT_NAME_RE.match(name):
        raise RecordError(f"name: {name!r} is not an event name")
    at = parse_time(raw["at"]) if "at" in raw else default_at
    props = raw.get("properties", {})
    if not isinstance(props, dict):
        raise RecordError("properties: expected an object")
    send = raw.get("send")
    if send is not None and (not isinstance(send, int) or isinstance(send, bool)):
        raise RecordError("send: expected a send id (integer)")
    return EventRecord(subscriber_id=sid, name=name, at=at, properties=props, send_id=send)
