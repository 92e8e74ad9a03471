"""RFC 8291 message encryption (aes128gcm), with pywebpush's own encoder.

Every message gets a fresh ECDH key and salt (pywebpush makes both). The
parsed subscription keys are cached per endpoint, so a batch does not decode
the same p256dh twice.
"""

from __future__ import annotations

from collections import OrderedDict
from threading import Lock

from pywebpush import WebPusher

from orchestrator.delivery import Target

RECORD_SIZE = 4096
MAX_PLAINTEXT = 3993  # 4096 − 86 (header with a 65-byte key) − 16 (tag) − 1 (padding delimiter)
_CACHE_SIZE = 50_000


class Encryptor:
    def __init__(self) -> None:
        self._pushers: OrderedDict[str, WebPusher] = OrderedDict()
        self._lock = Lock()

    def _pusher(self, target: Target) -> WebPusher:
        with self._lock:
            pusher = self._pushers.get(target.endpoint)
            if pusher is not None and pusher.subscription_info["keys"]["p256dh"] == target.p256dh:
                self._pushers.move_to_end(target.endpoint)
                return pusher
        pusher = WebPusher(
            {"endpoint": target.endpoint, "keys": {"p256dh": target.p256dh, "auth": target.auth}}
        )
        with self._lock:
            self._pushers[target.endpoint] = pusher
            if len(self._pushers) > _CACHE_SIZE:
                self._pushers.popitem(last=False)
        return pusher

    def encrypt(self, target: Target, plaintext: bytes) -> bytes:
        """One aes128gcm record for this subscription (raises ValueError over the size limit)."""
        if len(plaintext) > MAX_PLAINTEXT:
            raise ValueError(
                f"payload is {len(plaintext)} bytes; at most {MAX_PLAINTEXT} fit a record"
            )
        body = self._pusher(target).encode(plaintext, content_encoding="aes128gcm")["body"]
        return bytes(body)
