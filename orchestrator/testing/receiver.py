"""A small, real Web Push service on 127.0.0.1 for the demo, tests and benchmarks.

It speaks RFC 8030 (HTTP push), checks RFC 8292 VAPID and decrypts RFC 8291
aes128gcm messages with keys it made the way a browser would. Run it in-process
(`with Receiver() as r:`, a background thread with its own asyncio loop) or as a
process: `python -m orchestrator.testing.receiver --port 8090 --latency-ms 25`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import secrets
import signal
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

# The checks of one push; the public ones are re-exported, as part of this module's API.
from orchestrator.testing.protocol import (
    MAX_BODY as MAX_BODY,
    answer,
    b64url_decode as b64url_decode,
    b64url_encode as b64url_encode,
    check_claims as check_claims,
    check_headers as check_headers,
    decrypt as decrypt,
    parse_vapid as parse_vapid,
    read_body,
    reject,
    verify_jwt as verify_jwt,
)

_AUTH_CACHE_SIZE = 4096


@dataclass(frozen=True)
class Delivered:
    """One message the receiver accepted (201) and decrypted."""

    endpoint: str
    payload: bytes
    headers: dict[str, str]
    vapid_sub: str
    at: float
    message_id: str


@dataclass
class _Subscription:
    private_key: ec.EllipticCurvePrivateKey
    auth_secret: bytes
    server_key: bytes | None
    expired: bool = False


@dataclass(frozen=True)
class _Fault:
    status: int
    share: float
    retry_after: int | None
    sub_id: str | None


def _point(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )


def _sub_id(endpoint: str) -> str:
    return endpoint.rstrip("/").rsplit("/", 1)[-1]


def _server_key(application_server_key: str) -> bytes:
    """The raw P-256 point of an applicationServerKey; ValueError if it is not one."""
    raw = b64url_decode(application_server_key)
    ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw)
    return raw


class Receiver:
    """A local push service; `with Receiver() as r:` serves it on a background thread."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        latency_ms: float = 0.0,
        jitter_ms: float = 0.0,
        seed: int | None = None,
        keep: bool = True,
        decrypt_every: int = 1,
    ) -> None:
        self.host, self.port = host, port
        self.latency_ms, self.jitter_ms = latency_ms, jitter_ms
        self.keep = keep  # False: decrypt and count, but store no messages (benchmarks)
        # Benchmarks on a 2-core machine: decrypt 1 message in N (the others are checked up
        # to VAPID and headers), so the receiver is not the bottleneck being measured.
        self.decrypt_every = max(decrypt_every, 1)
        self._fault_rng, self._jitter_rng = random.Random(seed), random.Random(seed)
        self._lock = threading.Lock()
        self._subs: dict[str, _Subscription] = {}
        self._messages: dict[str, Delivered] = {}
        self._topics: dict[tuple[str, str], str] = {}
        self._distinct: set[tuple[str, str]] = set()
        self._faults: list[_Fault] = []
        self._auth_cache: dict[str, tuple[dict[str, Any], bytes]] = {}
        self._counts: Counter[str] = Counter()
        self._by_status: Counter[int] = Counter()
        self._origin: str | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------ lifecycle

    @property
    def origin(self) -> str:
        """`http://127.0.0.1:PORT`, the VAPID aud senders must use."""
        if self._origin is None:
            raise RuntimeError("the receiver is not started")
        return self._origin

    def start(self) -> Self:
        """Bind the port and serve on a background thread; return once listening."""
        if self._thread is not None:
            raise RuntimeError("the receiver is already started")
        sock = socket.create_server((self.host, self.port), backlog=4096)
        self.port = sock.getsockname()[1]
        self._origin = f"http://{self.host}:{self.port}"
        self._loop = _new_loop()
        ready = threading.Event()
        failed: list[BaseException] = []
        self._thread = threading.Thread(
            target=self._serve, args=(self._loop, sock, ready, failed), daemon=True
        )
        self._thread.start()
        ready.wait()
        if failed:
            self._thread = None
            raise RuntimeError("the receiver did not start") from failed[0]
        return self

    def stop(self) -> None:
        """Close the server and its thread (idempotent)."""
        if self._thread is None or self._loop is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._thread = self._loop = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _serve(
        self,
        loop: asyncio.AbstractEventLoop,
        sock: socket.socket,
        ready: threading.Event,
        failed: list[BaseException],
    ) -> None:
        asyncio.set_event_loop(loop)
        runner = web.AppRunner(self._app(), access_log=None, shutdown_timeout=1.0)
        try:
            loop.run_until_complete(runner.setup())
            loop.run_until_complete(web.SockSite(runner, sock, backlog=4096).start())
        except BaseException as exc:
            failed.append(exc)
            sock.close()
            loop.close()
            return
        finally:
            ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(runner.cleanup())
            loop.close()

    def _app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024)
        app.add_routes(
            [
                web.post("/push/{id}", self._on_push),
                web.post("/subscriptions", self._on_subscribe),
                web.get("/stats", self._on_stats),
            ]
        )
        return app

    # ------------------------------------------------------------ the test-facing API

    def subscribe(self, *, application_server_key: str | None = None) -> dict[str, Any]:
        """A new subscription, as the browser's `PushSubscription.toJSON()`."""
        server_key = _server_key(application_server_key) if application_server_key else None
        private_key = ec.generate_private_key(ec.SECP256R1())
        auth_secret = os.urandom(16)
        sub_id = secrets.token_urlsafe(24)
        endpoint = f"{self.origin}/push/{sub_id}"
        with self._lock:
            self._subs[sub_id] = _Subscription(private_key, auth_secret, server_key)
        keys = {"p256dh": b64url_encode(_point(private_key)), "auth": b64url_encode(auth_secret)}
        return {"endpoint": endpoint, "expirationTime": None, "keys": keys}

    def received(self, endpoint: str | None = None) -> list[Delivered]:
        """Messages held for the user agent, oldest first (all endpoints, or one)."""
        with self._lock:
            messages = list(self._messages.values())
        if endpoint is None:
            return messages
        return [m for m in messages if _sub_id(m.endpoint) == _sub_id(endpoint)]

    def take(self, endpoint: str | None = None) -> list[Delivered]:
        """Hand messages to the user agent: returned and removed, no longer replaceable by Topic."""
        taken = self.received(endpoint)
        with self._lock:
            for message in taken:
                self._messages.pop(message.message_id, None)
            self._topics = {k: v for k, v in self._topics.items() if v in self._messages}
        return taken

    def expire(self, endpoint: str) -> None:
        """The user unsubscribed: later pushes to this endpoint get 410 Gone."""
        with self._lock:
            self._subs[_sub_id(endpoint)].expired = True

    def fault(
        self,
        *,
        status: int,
        share: float = 1.0,
        retry_after: int | None = None,
        endpoint: str | None = None,
    ) -> None:
        """Answer `status` to a random `share` of pushes (to one endpoint, or all)."""
        if not 400 <= status <= 599 or not 0.0 <= share <= 1.0:
            raise ValueError("fault needs a 4xx/5xx status and a share within [0, 1]")
        fault = _Fault(status, share, retry_after, _sub_id(endpoint) if endpoint else None)
        with self._lock:  # endpoint faults are consulted before global ones
            self._faults.insert(0 if endpoint else len(self._faults), fault)

    def clear_faults(self) -> None:
        """Answer normally again."""
        with self._lock:
            self._faults.clear()

    def stats(self) -> dict[str, Any]:
        """Counters: requests, delivered, distinct (deliveries counted once per subscription
        and Topic), replaced (Topic), decrypted, subscriptions, by_status."""
        with self._lock:
            by_status = {str(code): n for code, n in sorted(self._by_status.items())}
            names = ("requests", "delivered", "distinct", "replaced", "decrypted")
            counts = {name: self._counts[name] for name in names}
            return {**counts, "subscriptions": len(self._subs), "by_status": by_status}

    # ------------------------------------------------------------ HTTP handlers

    async def _on_push(self, request: web.Request) -> web.Response:
        with self._lock:
            self._counts["requests"] += 1
        await self._delay()
        response = await answer(self._accept(request))
        with self._lock:
            self._by_status[response.status] += 1
        return response

    async def _accept(self, request: web.Request) -> web.Response:
        sub_id = request.match_info["id"]
        self._maybe_fault(sub_id)
        sub = self._lookup(sub_id)
        body = await read_body(request)
        recorded = check_headers(request.headers, body)
        vapid_sub = self._authorize(request.headers.get("Authorization"), sub)
        with self._lock:
            self._counts["checked"] += 1
            sample = self._counts["checked"] % self.decrypt_every == 0
        payload = b""
        if body and (sample or self.decrypt_every == 1):
            payload = decrypt(body, private_key=sub.private_key, auth_secret=sub.auth_secret)
            with self._lock:
                self._counts["decrypted"] += 1
        message_id = self._store(sub_id, payload, recorded, vapid_sub)
        location = f"{self.origin}/message/{message_id}"
        return web.Response(status=201, headers={"Location": location, "TTL": recorded["TTL"]})

    async def _on_subscribe(self, request: web.Request) -> web.Response:
        try:
            data = await request.json() if request.can_read_body else {}
            key = data.get("applicationServerKey") if isinstance(data, dict) else None
            count = data.get("count") if isinstance(data, dict) else None
            if count is not None:  # {"count": N}: N subscriptions at once (benchmarks)
                if not isinstance(count, int) or not 1 <= count <= 1_000_000:
                    raise ValueError("count must be an integer from 1 to 1,000,000")
                subs = [self.subscribe(application_server_key=key) for _ in range(count)]
                return web.json_response(subs, status=201)
            return web.json_response(self.subscribe(application_server_key=key), status=201)
        except ValueError as exc:
            return web.json_response({"error": str(exc)}, status=400)

    async def _on_stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.stats())

    # ------------------------------------------------------------ steps of a push

    async def _delay(self) -> None:
        if self.latency_ms <= 0 and self.jitter_ms <= 0:
            return
        with self._lock:
            jitter = self._jitter_rng.uniform(-self.jitter_ms, self.jitter_ms)
        await asyncio.sleep(max(0.0, self.latency_ms + jitter) / 1000)

    def _maybe_fault(self, sub_id: str) -> None:
        with self._lock:
            for fault in self._faults:
                if fault.sub_id in (None, sub_id) and self._fault_rng.random() < fault.share:
                    if fault.status in (404, 410) and sub_id in self._subs:
                        self._subs[sub_id].expired = True  # gone stays gone, as on a real service
                    headers = (
                        {} if fault.retry_after is None else {"Retry-After": str(fault.retry_after)}
                    )
                    raise reject(fault.status, "injected fault", headers)

    def _lookup(self, sub_id: str) -> _Subscription:
        with self._lock:
            sub = self._subs.get(sub_id)
        if sub is None:
            raise reject(404, "no such subscription")
        if sub.expired:
            raise reject(410, "subscription expired")
        return sub

    def _authorize(self, authorization: str | None, sub: _Subscription) -> str:
        """Verify VAPID (signatures cached per header value); return the sub claim."""
        cached = self._auth_cache.get(authorization) if authorization else None
        if cached is None:
            token, key = parse_vapid(authorization)
            cached = (verify_jwt(token, key), key)
            if len(self._auth_cache) >= _AUTH_CACHE_SIZE:
                self._auth_cache.clear()
            self._auth_cache[authorization or ""] = cached
        claims, key = cached
        vapid_sub = check_claims(claims, audience=self.origin, now=time.time())
        if sub.server_key is not None and key != sub.server_key:
            raise reject(403, "VAPID key is not this subscription's applicationServerKey")
        return vapid_sub

    def _store(self, sub_id: str, payload: bytes, headers: dict[str, str], vapid_sub: str) -> str:
        endpoint = f"{self.origin}/push/{sub_id}"
        message_id = secrets.token_urlsafe(16)
        message = Delivered(endpoint, payload, headers, vapid_sub, time.time(), message_id)
        with self._lock:
            self._counts["delivered"] += 1
            key = (sub_id, headers.get("Topic") or message_id)
            if key not in self._distinct:  # the same Topic to the same subscription: a repeat
                self._distinct.add(key)
                self._counts["distinct"] += 1
            if not self.keep:
                return message_id
            topic = headers.get("Topic")
            if topic is not None:  # RFC 8030 §5.4: replace the undelivered one
                earlier = self._topics.get((sub_id, topic))
                if earlier is not None and self._messages.pop(earlier, None) is not None:
                    self._counts["replaced"] += 1
                self._topics[(sub_id, topic)] = message_id
            self._messages[message_id] = message
        return message_id


def _new_loop() -> asyncio.AbstractEventLoop:
    """uvloop when installed (it is, with `campaign serve`'s dependencies): the receiver
    shares the machine with the sender it measures, so its own cost matters."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is in the lock file
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def main(argv: list[str] | None = None) -> None:
    """Run the receiver as a process; print its origin; stop on Ctrl-C or SIGTERM."""
    parser = argparse.ArgumentParser(prog="python -m orchestrator.testing.receiver")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--jitter-ms", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--keep", action="store_true", help="hold messages (memory grows)")
    parser.add_argument("--decrypt-every", type=int, default=1, help="decrypt 1 message in N")
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="STATUS:SHARE[:RETRY_AFTER]",
        help="answer STATUS to a random SHARE of pushes (repeatable; checked in order)",
    )
    args = parser.parse_args(argv)
    faults = []
    for spec in args.fault:
        parts = spec.split(":")
        try:
            if len(parts) not in (2, 3):
                raise ValueError(spec)
            faults.append(
                (int(parts[0]), float(parts[1]), int(parts[2]) if len(parts) == 3 else None)
            )
        except ValueError:
            parser.error(f"--fault {spec!r}: expected STATUS:SHARE[:RETRY_AFTER], e.g. 429:0.02:1")
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    receiver = Receiver(
        host=args.host,
        port=args.port,
        latency_ms=args.latency_ms,
        jitter_ms=args.jitter_ms,
        seed=args.seed,
        keep=args.keep,
        decrypt_every=args.decrypt_every,
    )
    for status, share, retry_after in faults:
        try:
            receiver.fault(status=status, share=share, retry_after=retry_after)
        except ValueError as exc:
            parser.error(str(exc))
    with receiver:
        print(receiver.origin, flush=True)
        try:
            while not stopping.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
