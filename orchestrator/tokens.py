"""Signed tokens for click links (`/c/{token}`) and profile links (`/me/{token}`).

A click token is base64url(kind ‖ send id as 8 bytes ‖ first 12 bytes of
HMAC-SHA256(secret, kind ‖ id)). A profile token names a subscriber and expires:
base64url("P" ‖ expiry as 5 bytes of Unix seconds ‖ subscriber id ‖ 16 bytes of
HMAC-SHA256(secret, everything before)). Tampering with any byte, using a token of
one kind as another, or an expired profile token fails the check.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

_KINDS = {"click": b"c", "profile": b"p"}
_MAC_BYTES = 12


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def sign(secret: str, kind: str, number: int) -> str:
    body = _KINDS[kind] + number.to_bytes(8, "big")
    mac = hmac.new(secret.encode(), body, hashlib.sha256).digest()[:_MAC_BYTES]
    return base64.urlsafe_b64encode(body + mac).rstrip(b"=").decode()


def verify(secret: str, kind: str, token: str) -> int | None:
    """The number inside a valid token of that kind, or None."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (ValueError, TypeError):
        return None
    if len(raw) != 1 + 8 + _MAC_BYTES or raw[:1] != _KINDS[kind]:
        return None
    body, mac = raw[:9], raw[9:]
    expected = hmac.new(secret.encode(), body, hashlib.sha256).digest()[:_MAC_BYTES]
    if not hmac.compare_digest(mac, expected):
        return None
    return int.from_bytes(body[1:], "big")


PROFILE_KIND = b"P"
PROFILE_MAC_BYTES = 16
PROFILE_DAYS = 90


def sign_profile(secret: str, subscriber_id: str, *, expires: int) -> str:
    """A link token for `/me/{token}`: this subscriber, until `expires` (Unix seconds)."""
    body = PROFILE_KIND + expires.to_bytes(5, "big") + subscriber_id.encode()
    mac = hmac.new(secret.encode(), body, hashlib.sha256).digest()[:PROFILE_MAC_BYTES]
    return base64.urlsafe_b64encode(body + mac).rstrip(b"=").decode()


def verify_profile(secret: str, token: str, *, now: float) -> str | None:
    """The subscriber id inside a valid, unexpired profile token, or None."""
    if len(token) > 400:
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (ValueError, TypeError):
        return None
    if len(raw) < 1 + 5 + 1 + PROFILE_MAC_BYTES or raw[:1] != PROFILE_KIND:
        return None
    body, mac = raw[:-PROFILE_MAC_BYTES], raw[-PROFILE_MAC_BYTES:]
    expected = hmac.new(secret.encode(), body, hashlib.sha256).digest()[:PROFILE_MAC_BYTES]
    if not hmac.compare_digest(mac, expected):
        return None
    if int.from_bytes(body[1:6], "big") < now:
        return None
    try:
        return body[6:].decode()
    except UnicodeDecodeError:
        return None
