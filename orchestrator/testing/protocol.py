"""What a push service checks in one push, apart from its own state: the RFC 8030
headers, the RFC 8292 VAPID token, the body's size and its RFC 8291 aes128gcm
decryption. A failed check raises a rejection (`reject`), which `answer` turns into
the HTTP response; `receiver` runs these checks for each push it serves.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Awaitable, Mapping
from typing import Any

import http_ece
from aiohttp import web
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils

MAX_BODY = 4096  # RFC 8291 §4: a push message body of at most 4096 octets
_URGENCIES = frozenset({"very-low", "low", "normal", "high"})
_TOPIC = re.compile(r"[A-Za-z0-9_-]{1,32}")
_TTL = re.compile(r"[0-9]{1,10}")
_MAX_EXP_S = 24 * 3600  # RFC 8292 §2: exp no more than 24 hours ahead
_CLOCK_SKEW_S = 60
_RECORDED = ("TTL", "Urgency", "Topic", "Content-Encoding", "Content-Type")


class _Reject(Exception):
    """Any answer but 201, raised by the checks and turned into a response."""

    def __init__(self, status: int, reason: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.headers = dict(headers or {})

    def response(self) -> web.Response:
        return web.Response(status=self.status, text=str(self), headers=self.headers)


def reject(status: int, reason: str, headers: Mapping[str, str] | None = None) -> _Reject:
    """The rejection to raise for an answer of `status` (a 4xx or 5xx) with `reason`."""
    return _Reject(status, reason, headers)


async def answer(push: Awaitable[web.Response]) -> web.Response:
    """The response to one push: the one it made, or the rejection its checks raised."""
    try:
        return await push
    except _Reject as rejected:
        return rejected.response()


def _unauthorized(reason: str) -> _Reject:
    return _Reject(401, reason, {"WWW-Authenticate": "vapid"})


def b64url_decode(text: str) -> bytes:
    """Decode base64url with or without padding (raises ValueError)."""
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def b64url_encode(data: bytes) -> str:
    """Encode as unpadded base64url, as browsers and VAPID do."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def check_headers(headers: Mapping[str, str], body: bytes) -> dict[str, str]:
    """Validate the RFC 8030 / RFC 8291 headers; return those worth recording."""
    ttl = headers.get("TTL")
    if ttl is None or not _TTL.fullmatch(ttl):
        raise _Reject(400, "TTL header missing or not a non-negative integer")
    urgency = headers.get("Urgency")
    if urgency is not None and urgency not in _URGENCIES:
        raise _Reject(400, "Urgency must be very-low, low, normal or high")
    topic = headers.get("Topic")
    if topic is not None and not _TOPIC.fullmatch(topic):
        raise _Reject(400, "Topic must be 1 to 32 base64url characters")
    encoding = headers.get("Content-Encoding")
    if body and encoding is None:
        raise _Reject(400, "Content-Encoding missing (RFC 8291 needs aes128gcm)")
    if encoding is not None and encoding.lower() != "aes128gcm":
        raise _Reject(415, "Content-Encoding must be aes128gcm")
    return {name: headers[name] for name in _RECORDED if name in headers}


def parse_vapid(authorization: str | None) -> tuple[str, bytes]:
    """Split `vapid t=<JWT>, k=<key>` into the token and the raw public key."""
    scheme, _, rest = (authorization or "").strip().partition(" ")
    if scheme.lower() != "vapid":
        raise _unauthorized("Authorization must use the vapid scheme (RFC 8292)")
    params: dict[str, str] = {}
    for part in rest.split(","):
        name, _, value = part.strip().partition("=")
        params[name.strip().lower()] = value.strip()
    token, key = params.get("t"), params.get("k")
    if not token or not key:
        raise _unauthorized("vapid Authorization needs both t= and k=")
    try:
        return token, b64url_decode(key)
    except ValueError as exc:
        raise _unauthorized("vapid k= is not base64url") from exc


def verify_jwt(token: str, key: bytes) -> dict[str, Any]:
    """Check an ES256 JWT's signature with a raw P-256 public key; return its claims."""
    try:
        head, body, sig = token.split(".")
        signature = b64url_decode(sig)
        if json.loads(b64url_decode(head)).get("alg") != "ES256" or len(signature) != 64:
            raise ValueError("not an ES256 JWT")
        public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), key)
        r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
        der = utils.encode_dss_signature(r, s)
        public.verify(der, f"{head}.{body}".encode("ascii"), ec.ECDSA(hashes.SHA256()))
        claims = json.loads(b64url_decode(body))
    except (ValueError, AttributeError, InvalidSignature) as exc:
        raise _unauthorized("VAPID token does not verify with k") from exc
    if not isinstance(claims, dict):
        raise _unauthorized("VAPID claims are not a JSON object")
    return claims


def check_claims(claims: Mapping[str, Any], *, audience: str, now: float) -> str:
    """Check aud, exp and sub (RFC 8292 §2); return sub."""
    if claims.get("aud") != audience:
        raise _unauthorized(f"VAPID aud must be {audience}")
    exp = claims.get("exp")
    if not isinstance(exp, int | float) or isinstance(exp, bool) or exp <= now:
        raise _unauthorized("VAPID token expired or without exp")
    if exp > now + _MAX_EXP_S + _CLOCK_SKEW_S:
        raise _unauthorized("VAPID exp is more than 24 hours ahead")
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub.startswith(("mailto:", "https:")):
        raise _unauthorized("VAPID sub must be a mailto: or https: contact")
    return sub


def decrypt(body: bytes, *, private_key: ec.EllipticCurvePrivateKey, auth_secret: bytes) -> bytes:
    """Decrypt one RFC 8291 aes128gcm message the way a user agent does."""
    if len(body) < 21 or body[20] != 65:
        raise _Reject(400, "aes128gcm header must carry the sender's 65-octet key")
    try:
        plain = http_ece.decrypt(
            body, private_key=private_key, auth_secret=auth_secret, version="aes128gcm"
        )
    except Exception as exc:  # http_ece raises ECEException, ValueError, struct.error
        raise _Reject(400, "body does not decrypt (RFC 8291 aes128gcm)") from exc
    return bytes(plain)


async def read_body(request: web.Request) -> bytes:
    """The body of a push, rejected with 413 past `MAX_BODY` octets."""
    if (request.content_length or 0) > MAX_BODY:
        raise _Reject(413, f"body larger than {MAX_BODY} octets")
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge as exc:
        raise _Reject(413, f"body larger than {MAX_BODY} octets") from exc
    if len(body) > MAX_BODY:
        raise _Reject(413, f"body larger than {MAX_BODY} octets")
    return body
