"""The local push service, over real sockets: pywebpush sends, the receiver checks and decrypts."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import aiohttp
import http_ece
import httpx
import pytest
import pywebpush
import requests
from cryptography.hazmat.primitives import serialization
from py_vapid import Vapid
from py_vapid.jwt import sign as sign_jwt

from orchestrator.testing.receiver import Receiver, b64url_decode, b64url_encode, decrypt
from tests.helpers import PLAINTEXT, RFC8291, private_key

CONTACT = "mailto:ops@example.com"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver(seed=7) as running:
        yield running


@pytest.fixture(scope="module")
def vapid() -> Vapid:
    key = Vapid()
    key.generate_keys()
    return key


def _public(key: Vapid) -> str:
    raw = key.public_key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return b64url_encode(raw)


def _webpush(sub: dict[str, Any], data: str, key: Vapid, **kwargs: Any) -> requests.Response:
    """pywebpush.webpush, returning the response whatever its status (fresh claims each call)."""
    kwargs.setdefault("ttl", 60)
    try:
        response = pywebpush.webpush(
            sub, data=data, vapid_private_key=key, vapid_claims={"sub": CONTACT}, **kwargs
        )
    except pywebpush.WebPushException as exc:
        assert isinstance(exc.response, requests.Response)
        return exc.response
    assert isinstance(response, requests.Response)
    return response


def _authorization(key: Vapid, **claims: Any) -> str:
    """A `vapid t=…, k=…` header over exactly these claims (no library checks)."""
    return f"vapid t={sign_jwt(claims, key.private_key)}, k={_public(key)}"


def _good_headers(receiver: Receiver, key: Vapid) -> dict[str, str]:
    auth = _authorization(key, aud=receiver.origin, exp=int(time.time()) + 3600, sub=CONTACT)
    return {"Authorization": auth, "TTL": "60", "Content-Encoding": "aes128gcm"}


def _encrypt(sub: dict[str, Any], data: bytes) -> bytes:
    body = pywebpush.WebPusher(sub).encode(data)["body"]
    assert isinstance(body, bytes)
    return body


# ------------------------------------------------------------------ delivery


def test_webpush_payload_decrypts_to_exactly_what_was_sent(
    receiver: Receiver, vapid: Vapid
) -> None:
    sub = receiver.subscribe()
    data = json.dumps({"title": "Größer: 2 TB ☁️", "url": "https://example.com/?a=1&b=2"})
    headers = {"Content-Type": "application/octet-stream", "Urgency": "high", "Topic": "launch-1"}
    before = time.time()
    response = _webpush(sub, data, vapid, headers=headers)
    assert response.status_code == 201
    assert response.headers["Location"].startswith(f"{receiver.origin}/message/")
    [message] = receiver.received(sub["endpoint"])
    assert message.payload == data.encode()
    assert message.endpoint == sub["endpoint"]
    assert message.vapid_sub == CONTACT
    assert before <= message.at <= time.time()
    assert message.headers == {
        "TTL": "60",
        "Urgency": "high",
        "Topic": "launch-1",
        "Content-Encoding": "aes128gcm",
        "Content-Type": "application/octet-stream",
    }


def test_subscription_is_shaped_like_a_browsers_push_subscription(receiver: Receiver) -> None:
    first, second = receiver.subscribe(), receiver.subscribe()
    assert first["endpoint"].startswith(f"{receiver.origin}/push/")
    assert first["expirationTime"] is None
    assert b64url_decode(first["keys"]["p256dh"])[0] == 4
    assert len(b64url_decode(first["keys"]["p256dh"])) == 65
    assert len(b64url_decode(first["keys"]["auth"])) == 16
    assert first["endpoint"] != second["endpoint"]
    assert first["keys"] != second["keys"]


def test_push_without_payload_is_accepted_as_rfc8030_allows(
    receiver: Receiver, vapid: Vapid
) -> None:
    sub = receiver.subscribe()
    headers = _good_headers(receiver, vapid)
    del headers["Content-Encoding"]
    assert httpx.post(sub["endpoint"], headers=headers).status_code == 201
    assert [m.payload for m in receiver.received(sub["endpoint"])] == [b""]


def test_messages_to_one_endpoint_are_listed_apart_from_others(
    receiver: Receiver, vapid: Vapid
) -> None:
    one, two = receiver.subscribe(), receiver.subscribe()
    for sub, text in ((one, "a"), (two, "b"), (one, "c")):
        assert _webpush(sub, text, vapid).status_code == 201
    assert [m.payload for m in receiver.received(one["endpoint"])] == [b"a", b"c"]
    assert [m.payload for m in receiver.received()] == [b"a", b"b", b"c"]


# ------------------------------------------------------------------ VAPID


def test_missing_authorization_is_401(receiver: Receiver, vapid: Vapid) -> None:
    sub = receiver.subscribe()
    headers = _good_headers(receiver, vapid)
    del headers["Authorization"]
    response = httpx.post(sub["endpoint"], content=_encrypt(sub, b"x"), headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "vapid"


def test_token_signed_by_another_key_than_k_is_401(receiver: Receiver, vapid: Vapid) -> None:
    sub, other = receiver.subscribe(), Vapid()
    other.generate_keys()
    headers = _good_headers(receiver, vapid)
    forged = _good_headers(receiver, other)["Authorization"].split(", k=")[0]
    headers["Authorization"] = f"{forged}, k={_public(vapid)}"
    response = httpx.post(sub["endpoint"], content=_encrypt(sub, b"x"), headers=headers)
    assert response.status_code == 401


@pytest.mark.parametrize(
    "claims",
    [
        pytest.param({"exp": -60}, id="expired"),
        pytest.param({"exp": 2 * 86400}, id="exp-over-24h-ahead"),
        pytest.param({"aud": "https://fcm.googleapis.com"}, id="aud-of-another-origin"),
        pytest.param({"sub": "ops@example.com"}, id="sub-not-mailto-or-https"),
    ],
)
def test_vapid_claims_that_break_rfc8292_are_401(
    receiver: Receiver, vapid: Vapid, claims: dict[str, Any]
) -> None:
    sub = receiver.subscribe()
    full = {"aud": receiver.origin, "sub": CONTACT, **claims}
    full["exp"] = int(time.time()) + claims.get("exp", 3600)
    headers = _good_headers(receiver, vapid) | {"Authorization": _authorization(vapid, **full)}
    response = httpx.post(sub["endpoint"], content=_encrypt(sub, b"x"), headers=headers)
    assert response.status_code == 401
    assert receiver.received() == []


def test_key_other_than_application_server_key_is_403(receiver: Receiver, vapid: Vapid) -> None:
    other = Vapid()
    other.generate_keys()
    sub = receiver.subscribe(application_server_key=_public(vapid))
    assert _webpush(sub, "intruder", other).status_code == 403
    assert _webpush(sub, "owner", vapid).status_code == 201
    assert [m.payload for m in receiver.received()] == [b"owner"]


# ------------------------------------------------------------------ RFC 8030 request checks


def test_body_over_4096_bytes_is_413(receiver: Receiver, vapid: Vapid) -> None:
    sub = receiver.subscribe()
    body = _encrypt(sub, b"x" * 3994)  # 86 header + 3994 + 1 delimiter + 16 tag = 4097
    assert len(body) == 4097
    response = httpx.post(sub["endpoint"], content=body, headers=_good_headers(receiver, vapid))
    assert response.status_code == 413
    chunked = httpx.post(
        sub["endpoint"], content=iter([body]), headers=_good_headers(receiver, vapid)
    )
    assert chunked.status_code == 413  # no Content-Length to go by
    assert _webpush(sub, "x" * 3993, vapid).status_code == 201


def test_missing_ttl_is_400(receiver: Receiver, vapid: Vapid) -> None:
    sub = receiver.subscribe()
    headers = _good_headers(receiver, vapid)
    del headers["TTL"]
    response = httpx.post(sub["endpoint"], content=_encrypt(sub, b"x"), headers=headers)
    assert response.status_code == 400


@pytest.mark.parametrize(
    ("change", "status"),
    [
        pytest.param({"Urgency": "urgent"}, 400, id="unknown-urgency"),
        pytest.param({"Topic": "t" * 33}, 400, id="topic-over-32"),
        pytest.param({"Topic": "not base64url!"}, 400, id="topic-not-base64url"),
        pytest.param({"TTL": "-1"}, 400, id="negative-ttl"),
        pytest.param({"Content-Encoding": "aesgcm"}, 415, id="legacy-aesgcm"),
    ],
)
def test_malformed_push_headers_are_refused(
    receiver: Receiver, vapid: Vapid, change: dict[str, str], status: int
) -> None:
    sub = receiver.subscribe()
    headers = _good_headers(receiver, vapid) | change
    response = httpx.post(sub["endpoint"], content=_encrypt(sub, b"x"), headers=headers)
    assert response.status_code == status


def test_body_with_missing_content_encoding_is_400(receiver: Receiver, vapid: Vapid) -> None:
    sub = receiver.subscribe()
    headers = _good_headers(receiver, vapid)
    del headers["Content-Encoding"]
    response = httpx.post(sub["endpoint"], content=_encrypt(sub, b"x"), headers=headers)
    assert response.status_code == 400


def test_body_that_does_not_decrypt_is_400(receiver: Receiver, vapid: Vapid) -> None:
    sub, other = receiver.subscribe(), receiver.subscribe()
    headers = _good_headers(receiver, vapid)
    for_other = _encrypt(other, b"meant for the other device")
    assert httpx.post(sub["endpoint"], content=for_other, headers=headers).status_code == 400
    tampered = bytearray(_encrypt(sub, b"hello"))
    tampered[-1] ^= 1
    assert httpx.post(sub["endpoint"], content=bytes(tampered), headers=headers).status_code == 400
    assert receiver.received() == []


def test_unknown_endpoint_is_404(receiver: Receiver, vapid: Vapid) -> None:
    sub = receiver.subscribe()
    sub["endpoint"] = f"{receiver.origin}/push/nobody"
    assert _webpush(sub, "x", vapid).status_code == 404


def test_expired_subscription_answers_410_gone(receiver: Receiver, vapid: Vapid) -> None:
    sub = receiver.subscribe()
    receiver.expire(sub["endpoint"])
    assert _webpush(sub, "x", vapid).status_code == 410


def test_topic_replaces_the_undelivered_message_with_the_same_topic(
    receiver: Receiver, vapid: Vapid
) -> None:
    sub = receiver.subscribe()
    for text, topic in (("v1", "price"), ("other", "news"), ("v2", "price")):
        assert _webpush(sub, text, vapid, headers={"Topic": topic}).status_code == 201
    assert [m.payload for m in receiver.received()] == [b"other", b"v2"]
    assert receiver.stats()["replaced"] == 1
    assert len(receiver.take(sub["endpoint"])) == 2  # handed to the user agent
    assert _webpush(sub, "v3", vapid, headers={"Topic": "price"}).status_code == 201
    assert [m.payload for m in receiver.received()] == [b"v3"]
    assert receiver.stats()["replaced"] == 1


# ------------------------------------------------------------------ faults and latency


def test_fault_429_answers_with_retry_after_until_cleared(receiver: Receiver, vapid: Vapid) -> None:
    sub = receiver.subscribe()
    receiver.fault(status=429, retry_after=7)
    response = _webpush(sub, "x", vapid)
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "7"
    receiver.clear_faults()
    assert _webpush(sub, "x", vapid).status_code == 201


def test_fault_503_on_half_the_requests_mixes_201_and_503(receiver: Receiver, vapid: Vapid) -> None:
    sub = receiver.subscribe()
    receiver.fault(status=503, share=0.5)
    body, headers = _encrypt(sub, b"x"), _good_headers(receiver, vapid)
    with httpx.Client() as client:
        codes = Counter(
            client.post(sub["endpoint"], content=body, headers=headers).status_code
            for _ in range(60)
        )
    assert set(codes) == {201, 503}
    assert 10 <= codes[503] <= 50
    stats = receiver.stats()
    assert stats["requests"] == 60
    assert stats["delivered"] == codes[201]
    assert stats["by_status"] == {"201": codes[201], "503": codes[503]}


def test_fault_on_one_endpoint_leaves_the_others_alone(receiver: Receiver, vapid: Vapid) -> None:
    sick, healthy = receiver.subscribe(), receiver.subscribe()
    receiver.fault(status=500, endpoint=sick["endpoint"])
    assert _webpush(sick, "x", vapid).status_code == 500
    assert _webpush(healthy, "x", vapid).status_code == 201


def test_latency_delays_every_answer() -> None:
    with Receiver(latency_ms=150) as slow:
        started = time.perf_counter()
        assert httpx.post(f"{slow.origin}/push/nobody", headers={"TTL": "0"}).status_code == 404
        assert time.perf_counter() - started >= 0.150


def test_slow_answers_overlap_instead_of_queueing(vapid: Vapid) -> None:
    with Receiver(latency_ms=500) as slow:
        sub = slow.subscribe()
        body, headers = _encrypt(sub, b"x"), _good_headers(slow, vapid)

        async def burst() -> list[int]:
            async with aiohttp.ClientSession() as session:

                async def one() -> int:
                    async with session.post(sub["endpoint"], data=body, headers=headers) as r:
                        return r.status

                return await asyncio.gather(*(one() for _ in range(50)))

        started = time.perf_counter()
        assert asyncio.run(burst()) == [201] * 50
        assert time.perf_counter() - started < 50 * 0.5 / 2  # serial would take 25 s


# ------------------------------------------------------------------ RFC 8291 test vector


def test_rfc8291_example_encrypts_byte_for_byte_and_decrypts() -> None:
    ua_key = private_key(RFC8291["ua_private"])
    ua_public = ua_key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    assert b64url_encode(ua_public) == RFC8291["ua_public"]
    auth_secret = b64url_decode(RFC8291["auth_secret"])
    body = http_ece.encrypt(
        PLAINTEXT,
        salt=b64url_decode(RFC8291["salt"]),
        private_key=private_key(RFC8291["as_private"]),
        dh=ua_public,
        auth_secret=auth_secret,
        version="aes128gcm",
    )
    assert body == b64url_decode(RFC8291["body"])
    assert decrypt(body, private_key=ua_key, auth_secret=auth_secret) == PLAINTEXT


# ------------------------------------------------------------------ HTTP extras and process mode


def test_stats_and_subscriptions_over_http(receiver: Receiver, vapid: Vapid) -> None:
    created = httpx.post(
        f"{receiver.origin}/subscriptions", json={"applicationServerKey": _public(vapid)}
    )
    assert created.status_code == 201
    sub = created.json()
    assert _webpush(sub, "over http", vapid).status_code == 201
    stats = httpx.get(f"{receiver.origin}/stats").json()
    assert stats == receiver.stats()
    assert stats["requests"] == stats["delivered"] == 1
    assert stats["by_status"] == {"201": 1}


def test_keep_false_counts_but_stores_nothing(vapid: Vapid) -> None:
    with Receiver(keep=False) as lean:
        assert _webpush(lean.subscribe(), "x", vapid).status_code == 201
        assert lean.received() == []
        assert lean.stats()["delivered"] == 1


def test_runs_as_a_process_and_prints_its_origin() -> None:
    command = [sys.executable, "-m", "orchestrator.testing.receiver", "--port", "0"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None
            origin = process.stdout.readline().strip()
            assert origin.startswith("http://127.0.0.1:")
            assert httpx.get(f"{origin}/stats").json()["requests"] == 0
        finally:
            process.terminate()
        assert process.wait(timeout=10) == 0
