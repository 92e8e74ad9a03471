"""Signed tokens for click links (`/c/{token}`) and profile links (`/me/{token}`).

A token is base64url(kind ‖ id as 8 bytes ‖ first 12 bytes of HMAC-SHA256(secret, kind ‖ id)).
Tampering with any byte, or using a click token as a profile token, fails the check.
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
