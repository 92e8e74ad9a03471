"""Our sender: encryption (RFC 8291 vector, pywebpush parity), VAPID tokens, and every answer class
over real HTTP against the local push service."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import http_ece
import pytest
from cryptography.hazmat.primitives import serialization

from orchestrator.delivery import Target
from orchestrator.errors import ConfigurationError
from orchestrator.push.client import ClientSettings, PushClient
from orchestrator.push.encrypt import Encryptor, encrypt_aes128gcm, pywebpush_encrypt
from orchestrator.push.vapid import TokenCache, VapidKey, check_subject
from orchestrator.testing.receiver import Receiver, b64url_decode, decrypt
from tests.conftest import push_request
from tests.helpers import PLAINTEXT, RFC8291, private_key

SUBJECT = "mailto:ops@example.com"


def test_our_encryption_matches_rfc8291_byte_for_byte() -> None:
    ua = private_key(RFC8291["ua_private"])
    ua_public = ua.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    body = encrypt_aes128gcm(
        PLAINTEXT,
        ua_public=ua_public,
        ua_key=ua.public_key(),
        auth_secret=b64url_decode(RFC8291["auth_secret"]),
        sender_key=private_key(RFC8291["as_private"]),
        salt=b64url_decode(RFC8291["salt"]),
    )
    assert body == b64url_decode(RFC8291["body"])


def test_fresh_keys_and_salt_per_message_and_pywebpush_reads_the_same_format() -> None:
    with Receiver() as receiver:
        sub = receiver.subscribe()
    target = Target(sub["endpoint"], sub["keys"]["p256dh"], sub["keys"]["auth"])
    enc = Encryptor()
    a, b = enc.encrypt(target, b"hello"), enc.encrypt(target, b"hello")
    assert a[:16] != b[:16] and a[21:86] != b[21:86]  # salt and sender key differ
    ours, theirs = enc.encrypt(target, b"same"), pywebpush_encrypt(target, b"same")
    assert len(ours) == len(theirs)
    with pytest.raises(ValueError, match="at most 3993"):
        enc.encrypt(target, b"x" * 3994)


def test_a_private_key_never_shows_in_repr_and_files_are_0600(tmp_path: object) -> None:
    key = VapidKey.generate()
    assert "PRIVATE" not in repr(key) and key.public_key_b64() in repr(key)
    path = tmp_path / "k.pem"  # type: ignore[operator]
    key.save(path)
    assert (path.stat().st_mode & 0o777) == 0o600
    assert VapidKey.load(str(path)).public_key_b64() == key.public_key_b64()


def test_a_missing_or_odd_subject_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="CAMPAIGN_VAPID_SUBJECT is not set"):
        check_subject(None)
    with pytest.raises(ConfigurationError, match="mailto: or https:"):
        check_subject("ops@example.com")


def test_tokens_are_signed_once_per_origin_and_renewed_near_expiry() -> None:
    now = [1_000_000.0]
    cache = TokenCache(key=VapidKey.generate(), subject=SUBJECT, clock=lambda: now[0])
    first = cache.header("https://a.example")
    assert cache.header("https://a.example") == first and cache.signed == 1
    cache.header("https://b.example")
    assert cache.signed == 2
    now[0] += 11.5 * 3600  # within the last hour of a 12 h token
    assert cache.header("https://a.example") != first and cache.signed == 3


# ------------------------------------------------------------------ over HTTP


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver(seed=1) as r:
        yield r


def _client(receiver: Receiver, **settings: float) -> PushClient:
    return PushClient(
        tokens=TokenCache(key=VapidKey.generate(), subject=SUBJECT),
        allowed_origins=(receiver.origin,),
        settings=ClientSettings(**settings),  # type: ignore[arg-type]
    )


def test_delivered_messages_decrypt_with_our_headers(receiver: Receiver) -> None:
    client = _client(receiver)
    try:
        sub = receiver.subscribe()
        (outcome,) = client.deliver(
            [push_request(7, sub, payload=json.dumps({"title": "Hé"}).encode())]
        )
    finally:
        client.close()
    assert (outcome.outcome, outcome.status_code) == ("delivered", 201)
    (message,) = receiver.received()
    assert json.loads(message.payload) == {"title": "Hé"}
    assert message.headers["TTL"] == "7200" and message.headers["Urgency"] == "high"
    assert (
        message.headers["Topic"] == "topic7"
        and message.headers["Content-Type"] == "application/octet-stream"
    )
    assert message.vapid_sub == SUBJECT


def test_gone_subscriptions_are_reported_for_pruning(receiver: Receiver) -> None:
    client = _client(receiver)
    try:
        alive, dead = receiver.subscribe(), receiver.subscribe()
        receiver.expire(str(dead["endpoint"]))
        one, two = client.deliver([push_request(1, alive, dead), push_request(2, dead)])
    finally:
        client.close()
    assert one.outcome == "delivered" and one.gone_endpoints == (dead["endpoint"],)
    assert two.outcome == "gone" and two.status_code == 410


def test_413_is_a_payload_error_and_is_not_retried(receiver: Receiver) -> None:
    client = _client(receiver)
    try:
        sub = receiver.subscribe()
        receiver.fault(status=413)
        (outcome,) = client.deliver([push_request(1, sub)])
    finally:
        client.close()
    assert outcome.outcome == "payload_error" and receiver.stats()["requests"] == 1


def test_5xx_is_retried_then_reported_failed(receiver: Receiver) -> None:
    client = _client(receiver, attempts=3, backoff_s=0.01)
    try:
        sub = receiver.subscribe()
        receiver.fault(status=503)
        (outcome,) = client.deliver([push_request(1, sub)])
    finally:
        client.close()
    assert (outcome.outcome, outcome.status_code) == ("failed", 503)
    assert receiver.stats()["requests"] == 3


def test_429_waits_for_retry_after_then_delivers(receiver: Receiver) -> None:
    client = _client(receiver)
    sub = receiver.subscribe()
    receiver.fault(status=429, retry_after=1)
    try:
        import threading

        threading.Timer(0.3, receiver.clear_faults).start()
        started = time.perf_counter()
        (outcome,) = client.deliver([push_request(1, sub)])
    finally:
        client.close()
    assert outcome.outcome == "delivered"
    assert time.perf_counter() - started >= 1.0


def test_a_long_retry_after_gives_up_for_this_tick(receiver: Receiver) -> None:
    client = _client(receiver, max_retry_after_s=2)
    try:
        sub = receiver.subscribe()
        receiver.fault(status=429, retry_after=3600)
        (outcome,) = client.deliver([push_request(1, sub)])
    finally:
        client.close()
    assert outcome.outcome == "rate_limited"


def test_a_vapid_rejection_stops_sends_to_that_origin_for_the_call(
    receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    other_key = VapidKey.generate().public_key_b64()
    client = _client(receiver)
    try:
        subs = [receiver.subscribe(application_server_key=other_key) for _ in range(5)]
        outcomes = client.deliver([push_request(i, s) for i, s in enumerate(subs)])
    finally:
        client.close()
    assert {o.outcome for o in outcomes} == {"vapid_rejected"}
    assert receiver.stats()["requests"] < 5 + 1  # later sends to the origin are not even tried
    assert "refuses our VAPID credentials" in caplog.text


def test_endpoints_outside_the_allowed_origins_are_never_contacted(receiver: Receiver) -> None:
    client = PushClient(
        tokens=TokenCache(key=VapidKey.generate(), subject=SUBJECT),
        allowed_origins=("https://fcm.googleapis.com",),
    )
    try:
        (outcome,) = client.deliver([push_request(1, receiver.subscribe())])
    finally:
        client.close()
    assert outcome.outcome == "disallowed" and receiver.stats()["requests"] == 0


def test_network_errors_are_retried_then_failed() -> None:
    sub = {
        "endpoint": "http://127.0.0.1:9/push/x",
        "keys": {"p256dh": _key_b64(), "auth": "AAAAAAAAAAAAAAAAAAAAAA"},
    }
    client = PushClient(
        tokens=TokenCache(key=VapidKey.generate(), subject=SUBJECT),
        allowed_origins=("http://127.0.0.1:9",),
        settings=ClientSettings(attempts=2, backoff_s=0.01, timeout_s=2),
    )
    try:
        (outcome,) = client.deliver([push_request(1, sub)])
    finally:
        client.close()
    assert outcome.outcome == "failed" and outcome.status_code is None


def _key_b64() -> str:
    with Receiver() as r:
        return str(r.subscribe()["keys"]["p256dh"])


def test_http_ece_decrypts_our_messages() -> None:
    import base64
    import os

    from cryptography.hazmat.primitives.asymmetric import ec

    ua = ec.generate_private_key(ec.SECP256R1())
    raw = ua.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    auth = os.urandom(16)

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).decode().rstrip("=")

    body = Encryptor().encrypt(Target("https://push.example/x", b64(raw), b64(auth)), PLAINTEXT)
    assert (
        http_ece.decrypt(body, private_key=ua, auth_secret=auth, version="aes128gcm") == PLAINTEXT
    )
    assert decrypt(body, private_key=ua, auth_secret=auth) == PLAINTEXT
