"""Delivery over HTTP (RFC 8030) to each subscription's push service, with every answer handled.

The requests go through `http1.Http1Client` (a lean HTTP/1.1 client, HTTP/2 by ALPN
where a push service offers it), or aiohttp with `ClientSettings(transport="aiohttp")`;
one event loop in a background thread with persistent connections, bounded
concurrency in total and per origin. Encryption and VAPID headers are prepared in
the caller's thread, so the loop only does I/O.

Answers: 201/202 delivered · 404/410 gone (the subscription is deleted) ·
413 payload error (never retried) · 400 rejected (body kept) · 401/403 the
origin refuses our VAPID key: no more sends to it in this call, logged loudly ·
429 wait for Retry-After (bounded), then give up for this tick · 5xx, timeouts
and network errors: retried with backoff a bounded number of times.

Before anything is prepared, every endpoint is checked again as stored
(`urls.endpoint_problem`: normal form, allowed origin); one that fails is not
sent to (`disallowed`, the problem as detail). An unexpected exception while
preparing, encrypting or sending to one endpoint is that endpoint's outcome
(`error`, detail `TypeName: message`), never the whole call's.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import random
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime

import aiohttp

from orchestrator.delivery import Outcome, SendOutcome, SendRequest, Target, describe
from orchestrator.language.urls import origin_of, screen_endpoint
from orchestrator.push.encrypt import Encryptor
from orchestrator.push.http1 import Http1Client, ProtocolError
from orchestrator.push.vapid import TokenCache

log = logging.getLogger("campaign.push")

# Outcome precedence when a subscriber has several devices: the best one counts.
_RANK = (
    Outcome.DELIVERED,
    Outcome.RATE_LIMITED,
    Outcome.FAILED,
    Outcome.VAPID_REJECTED,
    Outcome.PAYLOAD_ERROR,
    Outcome.REJECTED,
    Outcome.DISALLOWED,
    Outcome.ERROR,
    Outcome.GONE,
)


@dataclass(frozen=True)
class Attempt:
    endpoint: str
    outcome: Outcome
    status: int | None = None
    detail: str | None = None


@dataclass
class _Origin:
    semaphore: asyncio.Semaphore
    blocked: str | None = None  # why the origin refuses us (401/403) for the rest of this call
    not_before: float = 0.0  # loop time before which nothing is sent (429 Retry-After)


@dataclass
class ClientSettings:
    concurrency: int = 256
    per_origin: int = 256
    timeout_s: float = 10.0
    attempts: int = 3  # for 5xx and network errors
    backoff_s: float = 0.2  # doubled per attempt, with jitter
    max_retry_after_s: float = 30.0  # longer waits give up for this tick (Outcome.RATE_LIMITED)
    default_retry_after_s: float = 5.0
    transport: str = "http1"  # "http1" (our lean client, the measured fastest) or "aiohttp"
    ca_file: str | None = None  # CA bundle for push services with a private CA (and tests)


@dataclass
class PushClient:
    """The real `Delivery`: `deliver(requests)` from any thread; `close()` when done."""

    tokens: TokenCache
    allowed_origins: tuple[str, ...]
    settings: ClientSettings = field(default_factory=ClientSettings)
    encryptor: Encryptor = field(default_factory=Encryptor)

    def __post_init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="push-client", daemon=True
        )
        self._thread.start()
        self._session: aiohttp.ClientSession | None = None
        self._total: asyncio.Semaphore | None = None
        self._http1: Http1Client | None = None

    # -------------------------------------------------------------- public

    def deliver(self, requests: Sequence[SendRequest]) -> list[SendOutcome]:
        return self.submit(requests).result()

    def submit(
        self, requests: Sequence[SendRequest]
    ) -> concurrent.futures.Future[list[SendOutcome]]:
        """Encrypt here (the caller's thread), then send from the client's own thread;
        the caller may go on (e.g. claim the next batch) until it needs the answers."""
        seen: dict[str, str] = {}
        jobs = [self._prepare(r, seen) for r in requests]
        return asyncio.run_coroutine_threadsafe(self._deliver_all(jobs), self._loop)

    def close(self) -> None:
        if self._http1 is not None:
            asyncio.run_coroutine_threadsafe(self._http1.aclose(), self._loop).result(timeout=10)
            self._http1 = None
        if self._session is not None:
            asyncio.run_coroutine_threadsafe(self._session.close(), self._loop).result()
            self._session = None
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)

    # -------------------------------------------------------------- preparation (caller's thread)

    def _screen(self, endpoint: str, seen: dict[str, str]) -> tuple[str | None, str]:
        """(why not to send to `endpoint` or None, its origin): `urls.screen_endpoint`,
        with the origins already passed in this call remembered in `seen`."""
        return screen_endpoint(endpoint, self.allowed_origins, seen)

    def _prepare(
        self, request: SendRequest, seen: dict[str, str]
    ) -> tuple[SendRequest, list[tuple[Target, bytes | Attempt, dict[str, str]]]]:
        prepared: list[tuple[Target, bytes | Attempt, dict[str, str]]] = []
        for target in request.targets:
            try:
                prepared.append(self._prepare_one(request, target, seen))
            except Exception as exc:  # this endpoint's outcome, not the call's
                log.warning("could not prepare a push to one endpoint: %s", describe(exc))
                prepared.append(
                    (target, Attempt(target.endpoint, Outcome.ERROR, None, describe(exc)), {})
                )
        return request, prepared

    def _prepare_one(
        self, request: SendRequest, target: Target, seen: dict[str, str]
    ) -> tuple[Target, bytes | Attempt, dict[str, str]]:
        problem, origin = self._screen(target.endpoint, seen)
        if problem is not None:
            return target, Attempt(target.endpoint, Outcome.DISALLOWED, detail=problem), {}
        try:
            body: bytes | Attempt = self.encryptor.encrypt(target, request.payload)
        except ValueError as exc:
            body = Attempt(target.endpoint, Outcome.PAYLOAD_ERROR, detail=str(exc))
        headers = {
            "TTL": str(max(int(request.ttl.total_seconds()), 0)),
            "Urgency": request.urgency,
            "Topic": request.topic,
            "Content-Type": "application/octet-stream",
            "Content-Encoding": "aes128gcm",
            "Authorization": self.tokens.header(origin),
        }
        return target, body, headers

    # -------------------------------------------------------------- the loop

    async def _deliver_all(
        self, jobs: list[tuple[SendRequest, list[tuple[Target, bytes | Attempt, dict[str, str]]]]]
    ) -> list[SendOutcome]:
        if self.settings.transport == "http1" and self._http1 is None:
            self._http1 = Http1Client(
                limit_per_origin=self.settings.per_origin,
                timeout_s=self.settings.timeout_s,
                ca_file=self.settings.ca_file,
            )
        if self.settings.transport != "http1" and self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self.settings.concurrency,
                limit_per_host=self.settings.per_origin,
                ttl_dns_cache=300,
            )
            timeout = aiohttp.ClientTimeout(total=self.settings.timeout_s)
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=timeout, auto_decompress=False
            )
            self._total = asyncio.Semaphore(self.settings.concurrency)
        origins: dict[str, _Origin] = {}  # per call: a 401/403 blocks an origin for this tick only
        return list(
            await asyncio.gather(
                *(self._one(request, prepared, origins) for request, prepared in jobs)
            )
        )

    async def _one(
        self,
        request: SendRequest,
        prepared: list[tuple[Target, bytes | Attempt, dict[str, str]]],
        origins: dict[str, _Origin],
    ) -> SendOutcome:
        try:
            if len(prepared) == 1:  # the common case: one device, no extra task
                target, body, headers = prepared[0]
                only = (
                    await self._target(target, body, headers, origins)
                    if isinstance(body, bytes)
                    else body
                )
                return _aggregate(request.send_id, [only])
            attempts = await asyncio.gather(
                *(
                    self._target(target, body, headers, origins)
                    if isinstance(body, bytes)
                    else _done(body)
                    for target, body, headers in prepared
                )
            )
            return _aggregate(request.send_id, list(attempts))
        except Exception as exc:  # this send's outcome, not the call's
            log.warning("send %s failed unexpectedly: %s", request.send_id, describe(exc))
            return SendOutcome(request.send_id, Outcome.ERROR, None, describe(exc))

    async def _target(
        self, target: Target, body: bytes, headers: dict[str, str], origins: dict[str, _Origin]
    ) -> Attempt:
        try:
            return await self._target_attempts(target, body, headers, origins)
        except Exception as exc:  # this endpoint's outcome, never retried
            log.warning("a push to one endpoint failed unexpectedly: %s", describe(exc))
            return Attempt(target.endpoint, Outcome.ERROR, None, describe(exc))

    async def _target_attempts(
        self, target: Target, body: bytes, headers: dict[str, str], origins: dict[str, _Origin]
    ) -> Attempt:
        origin = origins.setdefault(
            origin_of(target.endpoint), _Origin(asyncio.Semaphore(self.settings.per_origin))
        )
        s = self.settings
        for attempt in range(1, s.attempts + 1):
            if origin.blocked:
                return Attempt(target.endpoint, Outcome.VAPID_REJECTED, detail=origin.blocked)
            wait = origin.not_before - self._loop.time()
            if wait > s.max_retry_after_s:
                return Attempt(
                    target.endpoint, Outcome.RATE_LIMITED, 429, f"Retry-After {wait:.0f}s"
                )
            if wait > 0:
                await asyncio.sleep(wait)
            result, retry_after = await self._post(target, body, headers, origin)
            if result.outcome == Outcome.RATE_LIMITED:
                delay = retry_after if retry_after is not None else s.default_retry_after_s
                origin.not_before = max(origin.not_before, self._loop.time() + delay)
                continue
            if result.outcome != Outcome.RETRY:
                return result
            if attempt < s.attempts:
                await asyncio.sleep(s.backoff_s * 2 ** (attempt - 1) * (0.5 + random.random()))
        if result.outcome == Outcome.RATE_LIMITED:
            return result
        return Attempt(target.endpoint, Outcome.FAILED, result.status, result.detail)

    async def _post(
        self, target: Target, body: bytes, headers: dict[str, str], origin: _Origin
    ) -> tuple[Attempt, float | None]:
        try:
            if self._http1 is not None:
                answer = await self._http1.post(target.endpoint, body, headers)
                status, reply, retry_header = (
                    answer.status,
                    answer.body,
                    answer.headers.get("retry-after"),
                )
            else:
                assert self._session is not None
                async with self._session.post(
                    target.endpoint, data=body, headers=headers, allow_redirects=False
                ) as response:
                    status, retry_header = response.status, response.headers.get("Retry-After")
                    reply = await response.read() if status >= 300 else b""
        except (TimeoutError, aiohttp.ClientError, OSError, ProtocolError) as exc:
            return Attempt(
                target.endpoint, Outcome.RETRY, None, f"{type(exc).__name__}: {exc}"[:300]
            ), None
        text = reply[:300].decode("utf-8", errors="replace") if status >= 300 else ""
        return _classify(target, status, text, origin), _retry_after(retry_header)


async def _done(attempt: Attempt) -> Attempt:
    return attempt


def _classify(target: Target, status: int, text: str, origin: _Origin) -> Attempt:
    endpoint = target.endpoint
    if status in (201, 202):
        return Attempt(endpoint, Outcome.DELIVERED, status)
    if status in (404, 410):
        return Attempt(endpoint, Outcome.GONE, status)
    if status == 413:
        return Attempt(endpoint, Outcome.PAYLOAD_ERROR, status, text or "payload too large")
    if status in (401, 403):
        reason = f"{status} from {origin_of(endpoint)}: VAPID key or subject refused ({text or 'no detail'})"
        if not origin.blocked:
            log.error(
                "push service refuses our VAPID credentials: %s; no more sends to it this tick",
                reason,
            )
        origin.blocked = reason
        return Attempt(endpoint, Outcome.VAPID_REJECTED, status, reason)
    if status == 429:
        return Attempt(endpoint, Outcome.RATE_LIMITED, status, text or None)
    if status >= 500:
        return Attempt(endpoint, Outcome.RETRY, status, text or None)
    if 300 <= status < 400:
        return Attempt(endpoint, Outcome.REJECTED, status, "redirects are not followed")
    return Attempt(endpoint, Outcome.REJECTED, status, text or None)


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        return max(parsedate_to_datetime(value).timestamp() - time.time(), 0.0)
    except (TypeError, ValueError):
        return None


def _aggregate(send_id: int, attempts: list[Attempt]) -> SendOutcome:
    if not attempts:
        return SendOutcome(send_id, Outcome.GONE, None, "no push subscription")
    best = min(attempts, key=lambda a: _RANK.index(a.outcome) if a.outcome in _RANK else len(_RANK))
    gone = tuple(a.endpoint for a in attempts if a.outcome == Outcome.GONE)
    detail = best.detail
    if best.outcome == Outcome.DELIVERED and len(attempts) > 1:
        detail = (
            f"{sum(a.outcome == Outcome.DELIVERED for a in attempts)} of {len(attempts)} devices"
        )
    return SendOutcome(send_id, best.outcome, best.status, detail, gone)
