"""RFC 8291 message encryption (aes128gcm, RFC 8188 record).

Every message gets a fresh ECDH key pair and a fresh 16-byte salt. The hot
path derives the keys with the standard library's HMAC and encrypts with
`cryptography`'s AES-GCM directly: the same algorithm as pywebpush's encoder
(http_ece), byte for byte — the tests check both against RFC 8291's published
vector and against each other — without the generic encoder's per-message
overhead. `pywebpush_encrypt` keeps pywebpush's own encoder for
comparison and as the reference.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import struct
from collections import OrderedDict
from threading import Lock

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pywebpush import WebPusher

from orchestrator.delivery import Target

RECORD_SIZE = 4096
MAX_PLAINTEXT = 3993  # 4096 − 86 (header with a 65-byte key) − 16 (tag) − 1 (padding delimiter)
_CACHE_SIZE = 50_000
_KEY_INFO = b"WebPush: info\x00"
_CEK_INFO = b"Content-Encoding: aes128gcm\x00\x01"
_NONCE_INFO = b"Content-Encoding: nonce\x00\x01"


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _hmac(key: bytes, data: bytes) -> bytes:
    return hmac.digest(key, data, hashlib.sha256)


def encrypt_aes128gcm(
    plaintext: bytes,
    *,
    ua_public: bytes,
    ua_key: ec.EllipticCurvePublicKey,
    auth_secret: bytes,
    sender_key: ec.EllipticCurvePrivateKey | None = None,
    salt: bytes | None = None,
) -> bytes:
    """One RFC 8291 record. `sender_key` and `salt` are fresh unless given (test vectors only)."""
    if len(plaintext) > MAX_PLAINTEXT:
        raise ValueError(f"payload is {len(plaintext)} bytes; at most {MAX_PLAINTEXT} fit a record")
    sender = sender_key or ec.generate_private_key(ec.SECP256R1())
    as_public = sender.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    salt = salt or os.urandom(16)
    ecdh_secret = sender.exchange(ec.ECDH(), ua_key)
    prk_key = _hmac(auth_secret, ecdh_secret)
    ikm = _hmac(prk_key, _KEY_INFO + ua_public + as_public + b"\x01")
    prk = _hmac(salt, ikm)
    cek = _hmac(prk, _CEK_INFO)[:16]
    nonce = _hmac(prk, _NONCE_INFO)[:12]
    header = salt + struct.pack("!IB", RECORD_SIZE, len(as_public)) + as_public
    return header + AESGCM(cek).encrypt(nonce, plaintext + b"\x02", None)


class Encryptor:
    """Encrypts for a subscription; parsed subscription keys are cached per endpoint."""

    def __init__(self) -> None:
        self._keys: OrderedDict[str, tuple[str, bytes, ec.EllipticCurvePublicKey, bytes]] = (
            OrderedDict()
        )
        self._lock = Lock()

    def _subscription_keys(self, target: Target) -> tuple[bytes, ec.EllipticCurvePublicKey, bytes]:
        with self._lock:
            cached = self._keys.get(target.endpoint)
            if cached is not None and cached[0] == target.p256dh:
                self._keys.move_to_end(target.endpoint)
                return cached[1], cached[2], cached[3]
        raw = _b64url_decode(target.p256dh)
        key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw)
        auth = _b64url_decode(target.auth)
        with self._lock:
            self._keys[target.endpoint] = (target.p256dh, raw, key, auth)
            if len(self._keys) > _CACHE_SIZE:
                self._keys.popitem(last=False)
        return raw, key, auth

    def encrypt(self, target: Target, plaintext: bytes) -> bytes:
        """One aes128gcm record for this subscription (ValueError over the size limit)."""
        raw, key, auth = self._subscription_keys(target)
        return encrypt_aes128gcm(plaintext, ua_public=raw, ua_key=key, auth_secret=auth)


def pywebpush_encrypt(target: Target, plaintext: bytes) -> bytes:
    """pywebpush's own encoder, for comparison (same algorithm, slower)."""
    pusher = WebPusher(
        {"endpoint": target.endpoint, "keys": {"p256dh": target.p256dh, "auth": target.auth}}
    )
    return bytes(pusher.encode(plaintext, content_encoding="aes128gcm")["body"])
