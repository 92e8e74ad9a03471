"""VAPID (RFC 8292): the application server's key pair and its signed JWTs.

A JWT is made once per push-service origin and reused until it is close to
expiry (valid 12 h, renewed with an hour to spare), not signed per message.
The private key never leaves this module: no repr, log line or error shows it.
"""

from __future__ import annotations

import base64
import os
import stat
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from py_vapid import Vapid02

from orchestrator.config import Config
from orchestrator.errors import ConfigurationError

JWT_LIFETIME_S = 12 * 3600
RENEW_BEFORE_S = 3600


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


class VapidKey:
    """The server's P-256 key pair. `repr` and `str` never show the private key."""

    def __init__(self, private_key: ec.EllipticCurvePrivateKey) -> None:
        self._vapid = Vapid02()
        self._vapid.private_key = private_key

    def __repr__(self) -> str:
        return f"VapidKey(public={self.public_key_b64()})"

    __str__ = __repr__

    @classmethod
    def generate(cls) -> VapidKey:
        return cls(ec.generate_private_key(ec.SECP256R1()))

    @classmethod
    def load(cls, value: str) -> VapidKey:
        """A PEM file path, PEM text, or the raw base64url private key (CAMPAIGN_VAPID_PRIVATE_KEY)."""
        text = value.strip()
        try:
            if text.startswith("-----BEGIN"):
                return cls._from_pem(text.encode())
            path = Path(text)
            if path.is_file():
                return cls._from_pem(path.read_bytes())
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            if len(raw) == 32:
                number = int.from_bytes(raw, "big")
                return cls(ec.derive_private_key(number, ec.SECP256R1()))
        except (ValueError, TypeError, OSError):
            pass
        raise ConfigurationError(
            "CAMPAIGN_VAPID_PRIVATE_KEY is neither a readable PEM file, PEM text, nor a raw "
            "base64url P-256 private key (run `campaign vapid init` to make one)"
        )

    @classmethod
    def _from_pem(cls, data: bytes) -> VapidKey:
        key = serialization.load_pem_private_key(data, password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(
            key.curve, ec.SECP256R1
        ):
            raise ValueError("not a P-256 key")
        return cls(key)

    def public_key_bytes(self) -> bytes:
        public: ec.EllipticCurvePublicKey = self._vapid.public_key
        return public.public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )

    def public_key_b64(self) -> str:
        """The applicationServerKey a page passes to `pushManager.subscribe`."""
        return b64url(self.public_key_bytes())

    def save(self, path: Path) -> None:
        """Write the private key as PEM, readable by the owner only (0600), never world-readable."""
        pem = self._vapid.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
        fd = os.open(path, flags, stat.S_IRUSR | stat.S_IWUSR)
        with os.fdopen(fd, "wb") as out:
            out.write(pem)

    def sign(self, *, audience: str, subject: str, expires: int) -> str:
        """The `Authorization` header value: `vapid t=JWT, k=PUBLIC_KEY`."""
        header = self._vapid.sign({"aud": audience, "sub": subject, "exp": expires})[
            "Authorization"
        ]
        return str(header)


def check_subject(subject: str | None) -> str:
    if not subject:
        raise ConfigurationError(
            "CAMPAIGN_VAPID_SUBJECT is not set: push services reject VAPID tokens without a "
            "contact (set it to mailto:you@example.com or an https: URL)"
        )
    if not (subject.startswith("mailto:") or subject.startswith("https:")):
        raise ConfigurationError(
            f"CAMPAIGN_VAPID_SUBJECT must start with mailto: or https: (got {subject!r})"
        )
    return subject


@dataclass
class TokenCache:
    """One signed Authorization header per push-service origin, renewed before it expires."""

    key: VapidKey
    subject: str
    clock: object = time.time
    _tokens: dict[str, tuple[str, int]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    signed: int = 0

    def header(self, origin: str) -> str:
        now = int(self.clock())  # type: ignore[operator]
        with self._lock:
            cached = self._tokens.get(origin)
            if cached is not None and cached[1] - now > RENEW_BEFORE_S:
                return cached[0]
            expires = now + JWT_LIFETIME_S
            value = self.key.sign(audience=origin, subject=self.subject, expires=expires)
            self._tokens[origin] = (value, expires)
            self.signed += 1
            return value


def load_key(config: Config) -> VapidKey:
    value = config.vapid_private_key
    if "\n" not in value and len(value) < 200 and not value.startswith("-----"):
        path = Path(value)
        if not path.exists() and path.suffix in (".pem", ".key"):
            raise ConfigurationError(
                f"VAPID key file {value} does not exist: run `campaign vapid init` "
                "or set CAMPAIGN_VAPID_PRIVATE_KEY"
            )
    return VapidKey.load(value)


def check_ready(config: Config) -> tuple[VapidKey, str]:
    """The key and subject, or a ConfigurationError saying what to set."""
    subject = check_subject(config.vapid_subject)
    return load_key(config), subject
