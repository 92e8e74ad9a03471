"""Signed tokens for click links (`/c/{token}`) and profile links (`/me/{token}`), and the
identity proofs a site's backend computes for its own subscriber ids.

A click token is base64url(kind ‖ send id as 8 bytes ‖ first 12 bytes of
HMAC-SHA256(secret, kind ‖ id)). A profile token names a subscriber, the version of
their links and an expiry: base64url("Q" ‖ expiry as 5 bytes of Unix seconds ‖
version as 4 bytes ‖ subscriber id ‖ 16 bytes of HMAC-SHA256(secret, everything
before)); raising a subscriber's version (`campaign subscribers revoke-links`)
revokes every link made before. Tokens of the older form "P" (no version) stand for
version 0. Tampering with any byte, using a token of one kind as another, or an
expired profile token fails the check.

An identity proof is hex HMAC-SHA256(identity key, subscriber id), the identity key
being derived from the secret (`identity_key`): a site's backend that holds the key
can vouch for its own ids without ever holding the secret that signs links.
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
    if len(token) > 64 or not token.isascii():
        return None
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


PROFILE_KIND = b"Q"
UNVERSIONED_KIND = b"P"
PROFILE_MAC_BYTES = 16
PROFILE_DAYS = 90


def sign_profile(secret: str, subscriber_id: str, *, expires: int, version: int = 0) -> str:
    """A link token for `/me/{token}`: this subscriber's links of `version`, until
    `expires` (Unix seconds)."""
    body = (
        PROFILE_KIND
        + expires.to_bytes(5, "big")
        + version.to_bytes(4, "big")
        + subscriber_id.encode()
    )
    mac = hmac.new(secret.encode(), body, hashlib.sha256).digest()[:PROFILE_MAC_BYTES]
    return base64.urlsafe_b64encode(body + mac).rstrip(b"=").decode()


def verify_profile(secret: str, token: str, *, now: float) -> tuple[str, int] | None:
    """(subscriber id, link version) inside a valid, unexpired profile token, or None.
    The caller compares the version with the subscriber's current one."""
    if len(token) > 400 or not token.isascii():
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (ValueError, TypeError):
        return None
    kind = raw[:1]
    header = 1 + 5 + (4 if kind == PROFILE_KIND else 0)
    if kind not in (PROFILE_KIND, UNVERSIONED_KIND) or len(raw) < header + 1 + PROFILE_MAC_BYTES:
        return None
    body, mac = raw[:-PROFILE_MAC_BYTES], raw[-PROFILE_MAC_BYTES:]
    expected = hmac.new(secret.encode(), body, hashlib.sha256).digest()[:PROFILE_MAC_BYTES]
    if not hmac.compare_digest(mac, expected):
        return None
    if int.from_bytes(body[1:6], "big") < now:
        return None
    version = int.from_bytes(body[6:10], "big") if kind == PROFILE_KIND else 0
    try:
        return body[header:].decode(), version
    except UnicodeDecodeError:
        return None


def identity_key(secret: str) -> str:
    """The key a site's backend uses to prove its subscriber ids (see `identity_proof`)."""
    return hmac.new(secret.encode(), b"campaign-flow identity v1", hashlib.sha256).hexdigest()


def identity_proof(key: str, subscriber_id: str) -> str:
    """hex HMAC-SHA256(identity key, subscriber id): what the site sends as `id_hash`."""
    return hmac.new(key.encode(), subscriber_id.encode(), hashlib.sha256).hexdigest()


def proof_valid(secret: str, subscriber_id: str, given: object) -> bool:
    if not isinstance(given, str) or len(given) != 64 or not given.isascii():
        return False
    expected = identity_proof(identity_key(secret), subscriber_id)
    return hmac.compare_digest(given.lower().encode(), expected.encode())
