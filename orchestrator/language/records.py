"""Validation of what comes in from outside: subscriber lines, push subscriptions, events.

Used by `campaign subscribers import`, `campaign events add`, the simulator's
population files and the HTTP API, so a record is judged the same way whichever
door it came through. `loads` is the one JSON parser for outside text and
`check_json` the one check of a JSON value's contents: finite numbers, integers
within ±2^53 (what every JSON reader agrees on), text without NUL or lone
surrogates (which PostgreSQL's jsonb and SQLite's JSON functions refuse), nesting
at most MAX_DEPTH levels. Every refusal is a RecordError whose message starts
with where (`attributes.score: …`).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from orchestrator.errors import CampaignError
from orchestrator.language import urls
from orchestrator.language.spec import check_timezone_name

SUBSCRIBER_ID_RE = re.compile(r"\A[A-Za-z0-9_.@:+-]{1,128}\Z")
EVENT_NAME_RE = re.compile(r"\A[A-Za-z_][A-Za-z0-9_.:-]{0,63}\Z")
EVENT_ID_RE = SUBSCRIBER_ID_RE  # a client's idempotency key: the same alphabet and length
TAG_RE = re.compile(r"\A[^\x00-\x1f\x7f]{1,64}\Z")
MAX_ATTRIBUTES_BYTES = 16_384
MAX_PROPERTIES_BYTES = 16_384
MAX_DEPTH = 16  # objects and arrays inside one another, the value itself being level 1
MAX_SAFE_INTEGER = 2**53  # integers beyond ±2^53 lose precision in JavaScript and jsonb
MAX_NUMBER_CHARS = 40  # digits (and sign, point, exponent) of one JSON number
FIRST_YEAR, LAST_YEAR = 1970, 9999
MAX_SEND_ID = 2**31 - 1  # send ids are PostgreSQL integers


class RecordError(CampaignError, ValueError):
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
    client_id: str | None = None  # the sender's idempotency key: a repeat is stored once


# ------------------------------------------------------------------ JSON from outside


def loads(text: str | bytes, where: str = "body", *, max_depth: int = MAX_DEPTH + 4) -> Any:
    """Parse JSON strictly: no NaN or Infinity, no number longer than MAX_NUMBER_CHARS,
    no integer beyond ±2^53, nesting at most `max_depth` levels. The C parser does the
    work in one pass; input nested deeper than it recurses is refused as nested too
    deeply, never a RecursionError. The contents still go through `check_json` where
    they are used."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise RecordError(f"{where}: not UTF-8 text (byte {exc.start})") from None
    try:
        value = _DECODER.decode(text)
    except json.JSONDecodeError as exc:
        raise RecordError(
            f"{where}: not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
        ) from None
    except _BadNumber as exc:
        raise RecordError(f"{where}: {exc}") from None
    except RecursionError:
        raise RecordError(f"{where}: nested deeper than {max_depth} levels") from None
    if _deeper_than(value, max_depth):
        raise RecordError(f"{where}: nested deeper than {max_depth} levels")
    return value


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether arrays and objects nest more than `limit` levels (iterative)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


class _BadNumber(ValueError):
    """A number `loads` refuses (raised from the decoder's hooks)."""


def _no_constant(name: str) -> Any:
    raise _BadNumber(f"{name} is not a JSON number (numbers must be finite)")


def _json_int(text: str) -> int:
    if len(text) > MAX_NUMBER_CHARS:
        raise _BadNumber(f"a number of {len(text):,} digits (at most {MAX_NUMBER_CHARS})")
    value = int(text)
    if abs(value) > MAX_SAFE_INTEGER:
        raise _BadNumber(f"{text} is beyond ±2^53 (send large numbers as text)")
    return value


def _json_float(text: str) -> float:
    if len(text) > MAX_NUMBER_CHARS:
        raise _BadNumber(f"a number of {len(text):,} characters (at most {MAX_NUMBER_CHARS})")
    value = float(text)
    if not math.isfinite(value):
        raise _BadNumber(f"{text} is beyond the range of a JSON number")
    return value


_DECODER = json.JSONDecoder(
    parse_constant=_no_constant, parse_int=_json_int, parse_float=_json_float
)


def check_json(value: Any, where: str, *, max_bytes: int) -> Any:
    """`value` itself when it is plain JSON we can store everywhere; RecordError naming the
    first offending place otherwise (`attributes.scores[2]: NaN is not allowed`).

    Iterative (no recursion, whatever the input). Size is the compact JSON encoding,
    computed only when a bound on it (every character escaped, every number long)
    could pass `max_bytes`."""
    if not value and isinstance(value, dict | list):
        return value
    stack: list[tuple[Any, str, int]] = [(value, where, 1)]
    bound = 0  # an upper bound of the encoded size, in bytes
    while stack:
        item, path, depth = stack.pop()
        if item is None or isinstance(item, bool):
            bound += 5
        elif isinstance(item, str):
            _check_chars(item, path)
            bound += 6 * len(item) + 2
        elif isinstance(item, int):
            if abs(item) > MAX_SAFE_INTEGER:
                raise RecordError(f"{path}: {_short(item)} is beyond ±2^53 (send it as text)")
            bound += 17
        elif isinstance(item, float):
            if not math.isfinite(item):
                shown = "NaN" if math.isnan(item) else "Infinity"
                raise RecordError(f"{path}: {shown} is not allowed (numbers must be finite)")
            bound += 25
        elif isinstance(item, dict | list):
            if depth > MAX_DEPTH:
                raise RecordError(f"{path}: nested deeper than {MAX_DEPTH} levels")
            bound += 2 + len(item)
            if isinstance(item, dict):
                for key, child in item.items():
                    if not isinstance(key, str):
                        raise RecordError(f"{path}: keys must be text")
                    _check_chars(key, f"{path} (a key)")
                    bound += 6 * len(key) + 3
                    stack.append((child, _child(path, key), depth + 1))
            else:
                stack.extend((child, f"{path}[{i}]", depth + 1) for i, child in enumerate(item))
        else:
            raise RecordError(f"{path}: {type(item).__name__} is not a JSON value")
    if bound > max_bytes:
        size = len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
        if size > max_bytes:
            raise RecordError(f"{where}: larger than {max_bytes:,} bytes ({size:,})")
    return value


def check_text(
    value: Any,
    where: str,
    *,
    max_chars: int,
    pattern: re.Pattern[str] | None = None,
    what: str = "text",
) -> str:
    """A short text from outside: a string of at most `max_chars`, without NUL or lone
    surrogates, matching `pattern` in full when given."""
    if not isinstance(value, str):
        raise RecordError(f"{where}: expected {what}")
    if len(value) > max_chars:
        raise RecordError(f"{where}: longer than {max_chars:,} characters")
    _check_chars(value, where)
    if pattern is not None and not pattern.fullmatch(value):
        raise RecordError(f"{where}: {value!r} is not {what}")
    return value


def _check_chars(text: str, where: str) -> None:
    if "\x00" in text:
        raise RecordError(f"{where}: contains a NUL character")
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise RecordError(
                f"{where}: contains a lone surrogate at character {exc.start + 1} "
                "(not valid Unicode)"
            ) from None


def _child(path: str, key: str) -> str:
    return f"{path}.{key}" if key.isidentifier() else f"{path}[{json.dumps(key)[:40]}]"


def _short(number: int) -> str:
    if number.bit_length() <= 80:
        return str(number)
    return f"an integer of about {int(number.bit_length() * 0.30103) + 1:,} digits"


def _b64url_decode(value: str) -> bytes:
    """Strict base64 (the url-safe alphabet, or the standard one; padding optional): any
    other character is an error, not skipped."""
    if len(value) > 200 or not _B64.fullmatch(value):
        raise ValueError("not base64url")
    bare = value.rstrip("=").replace("+", "-").replace("/", "_")
    return base64.urlsafe_b64decode(bare + "=" * (-len(bare) % 4))


def b64url(raw: bytes) -> str:
    """The canonical form keys are stored in: base64url without padding."""
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


_B64 = re.compile(r"[A-Za-z0-9_+/-]*={0,2}")


def b64_equal(a: str, b: str) -> bool:
    """Whether two base64 texts hold the same bytes (constant time)."""
    return hmac.compare_digest(_b64url_decode(a), _b64url_decode(b))


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
    return PushSubscriptionRecord(endpoint=endpoint, p256dh=b64url(point), auth=b64url(secret))


def check_subscriber_id(value: Any, where: str = "id") -> str:
    if not isinstance(value, str) or not SUBSCRIBER_ID_RE.fullmatch(value):
        shown = repr(value) if not isinstance(value, str) or len(value) <= 140 else "the text"
        raise RecordError(
            f"{where}: {shown} is not a subscriber id (1-128 of letters, digits and _ . @ : + -)"
        )
    return value


def check_timezone(value: Any, where: str = "timezone") -> str:
    """The campaign language's timezone check, worded for a record."""
    if isinstance(value, str) and (len(value) > 64 or not _TZ_RE.fullmatch(value)):
        shown = repr(value) if len(value) <= 70 else "the text"
        raise RecordError(f"{where}: {shown} is not an IANA timezone (e.g. Europe/Berlin, UTC)")
    try:
        return check_timezone_name(value)
    except ValueError as exc:
        raise RecordError(f"{where}: {exc}") from None


_TZ_RE = re.compile(r"\A[A-Za-z][A-Za-z0-9_+-]*(?:/[A-Za-z0-9_+-]+)*\Z")


def check_tags(value: Any, where: str = "tags") -> tuple[str, ...]:
    """A list of tags: each 1-64 characters, no control characters; duplicates dropped."""
    if not isinstance(value, list):
        raise RecordError(f"{where}: expected a list of short texts")
    if len(value) > 256:
        raise RecordError(f"{where}: more than 256 tags")
    for i, tag in enumerate(value):
        check_text(
            tag,
            f"{where}[{i}]",
            max_chars=64,
            pattern=TAG_RE,
            what="a tag (1-64 characters, no control characters)",
        )
    return tuple(dict.fromkeys(value))


def check_attributes(value: Any, where: str = "attributes") -> dict[str, Any]:
    if not isinstance(value, dict):
        raise RecordError(f"{where}: expected an object")
    return dict(check_json(value, where, max_bytes=MAX_ATTRIBUTES_BYTES))


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
    attributes = check_attributes(raw.get("attributes", {}))
    tags = check_tags(raw.get("tags", []))
    subs_raw: list[Any] = []
    if "subscription" in raw:
        subs_raw.append(raw["subscription"])
    if "subscriptions" in raw:
        if not isinstance(raw["subscriptions"], list):
            raise RecordError("subscriptions: expected a list")
        if len(raw["subscriptions"]) > 32:
            raise RecordError("subscriptions: more than 32")
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
        attributes=attributes,
        tags=tags,
        subscriptions=subs,
    )


def parse_time(value: Any, where: str = "at") -> datetime:
    """An ISO 8601 time (no offset: UTC) between FIRST_YEAR and LAST_YEAR, in UTC."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        if len(value) > 64:
            raise RecordError(f"{where}: not an ISO 8601 time (longer than 64 characters)")
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise RecordError(f"{where}: {value!r} is not an ISO 8601 time") from None
    else:
        raise RecordError(f"{where}: expected an ISO 8601 time")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        utc = moment.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+14:00 is before the first UTC moment Python has
        utc = None
    if utc is None or not FIRST_YEAR <= utc.year <= LAST_YEAR:
        raise RecordError(
            f"{where}: {moment.isoformat()} is outside the years {FIRST_YEAR}-{LAST_YEAR}"
        )
    return utc


def parse_event(raw: Any, *, default_at: datetime) -> EventRecord:
    if not isinstance(raw, dict):
        raise RecordError("expected a JSON object")
    unknown = set(raw) - {"id", "subscriber", "name", "at", "properties", "send"}
    if unknown:
        raise RecordError(f"unknown field(s): {', '.join(sorted(unknown)[:10])}"[:300])
    sid = check_subscriber_id(raw.get("subscriber"), "subscriber")
    name = raw.get("name")
    if not isinstance(name, str) or not EVENT_NAME_RE.fullmatch(name):
        shown = repr(name) if not isinstance(name, str) or len(name) <= 70 else "the text"
        raise RecordError(
            f"name: {shown} is not an event name (letters, digits, _ . : -; at most 64)"
        )
    at = parse_time(raw["at"]) if "at" in raw else default_at
    props = raw.get("properties", {})
    if not isinstance(props, dict):
        raise RecordError("properties: expected an object")
    check_json(props, "properties", max_bytes=MAX_PROPERTIES_BYTES)
    send = raw.get("send")
    if send is not None and (
        not isinstance(send, int) or isinstance(send, bool) or not 0 < send <= MAX_SEND_ID
    ):
        raise RecordError(f"send: expected a send id (an integer from 1 to {MAX_SEND_ID:,})")
    client_id = raw.get("id")
    if client_id is not None:
        check_text(
            client_id,
            "id",
            max_chars=128,
            pattern=EVENT_ID_RE,
            what="an event id (1-128 of letters, digits and _ . @ : + -)",
        )
    return EventRecord(
        subscriber_id=sid, name=name, at=at, properties=props, send_id=send, client_id=client_id
    )


def parse_population_events(subscriber_id: str, raw: Any) -> list[EventRecord]:
    """The `events` of a population line (`[{name, at, properties?}]`), each checked as
    an event of that subscriber; RecordError names the first bad one."""
    if not isinstance(raw, list):
        raise RecordError("events: expected a list")
    out = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            raise RecordError(f"events[{i}]: expected an object with name and at")
        if "at" not in item:
            raise RecordError(f"events[{i}].at: missing")
        try:
            out.append(
                parse_event({**item, "subscriber": subscriber_id}, default_at=datetime.now(UTC))
            )
        except RecordError as exc:
            raise RecordError(f"events[{i}].{exc}") from None
    return out
