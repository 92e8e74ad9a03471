"""Encryption and HTTP in child processes, so they do not share the tick's GIL.

One Python process is bound by its GIL: the tick's database work (claim, advance,
ledger), RFC 8291 encryption (`cryptography` holds the GIL while it works) and the
HTTP client all take turns on one core. `DeliveryProcesses` moves encryption and
HTTP into `count` child processes, each with its own `PushClient` (own event loop,
connection pool and VAPID token cache); the tick process only claims and records.
`campaign bench` measures the pipeline with and without them (docs/benchmarks.md).

Nothing about exactly-once changes: a batch's ledger rows commit before its
requests are handed over. If a child dies, the batch's future fails; its sends
stay `claimed` and a later tick sends them again after the claim grace period,
exactly as after a crash of the tick itself (MAX_ATTEMPTS in all, then `failed`).
An unexpected exception for one send inside a child is that send's outcome
(`error`, from the child's own `PushClient`), never its batch's.

The VAPID key is loaded by each child from the configuration (a file path or the
environment); it never crosses the pipe. Children are started with `spawn` (no
fork of a process that runs threads) on the first batch large enough to be worth
it; smaller batches are sent in-process.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import logging
import multiprocessing
import signal
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from orchestrator.config import Config
from orchestrator.delivery import SendOutcome, SendRequest
from orchestrator.errors import DeliveryError
from orchestrator.push.client import ClientSettings

log = logging.getLogger("campaign.push")


READY = -1  # the number of the message a child sends once it can take batches


class DeliveryProcessError(DeliveryError):
    """A delivery process died or failed; the batch's sends stay claimed and are sent again."""


def _child(conn: Connection, config: Config, settings: ClientSettings) -> None:
    """A delivery process: receive (number, requests), send back (number, outcomes or error)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when we stop
    from orchestrator.push.client import PushClient
    from orchestrator.push.vapid import TokenCache, check_ready

    key, subject = check_ready(config)
    client = PushClient(
        tokens=TokenCache(key=key, subject=subject),
        allowed_origins=config.push_allowed_origins,
        settings=settings,
    )
    sending = threading.Lock()
    pending = threading.Semaphore(0)
    started = 0
    conn.send((READY, ("ok", None)))

    def reply(number: int, answer: tuple[str, Any]) -> None:
        # the parent may be gone: its sends stay claimed and go again after the grace
        with sending, contextlib.suppress(OSError):
            conn.send((number, answer))

    def answer(number: int, done: Future[list[SendOutcome]]) -> None:
        try:
            try:
                outcome: tuple[str, Any] = ("ok", done.result())
            except BaseException as exc:
                outcome = ("error", f"{type(exc).__name__}: {exc}")
            reply(number, outcome)
        finally:
            pending.release()  # so that stopping never waits on an answer nobody can take

    try:
        while True:
            try:
                message = conn.recv()
            except EOFError:
                break
            if message is None:
                break
            number, requests = message
            try:
                future = client.submit(requests)
            except Exception as exc:
                reply(number, ("error", f"{type(exc).__name__}: {exc}"))
                continue
            started += 1
            future.add_done_callback(functools.partial(answer, number))
        for _ in range(started):  # answer every batch taken before stopping
            pending.acquire()
    finally:
        client.close()


@dataclass
class _Worker:
    process: Any  # multiprocessing.Process (spawn context)
    conn: Connection
    lock: threading.Lock = field(default_factory=threading.Lock)  # `waiting` and `dead`
    sending: threading.Lock = field(default_factory=threading.Lock)  # one writer on the pipe
    waiting: dict[int, Future[list[SendOutcome]]] = field(default_factory=dict)
    reader: threading.Thread | None = None
    dead: str | None = None
    ready: threading.Event = field(default_factory=threading.Event)


@dataclass
class DeliveryProcesses:
    """`submit(requests)` splits a batch over `count` child processes and returns one future."""

    config: Config
    settings: ClientSettings
    count: int
    _workers: list[_Worker] = field(default_factory=list)
    _numbers: itertools.count[int] = field(default_factory=itertools.count)
    _guard: threading.Lock = field(default_factory=threading.Lock)

    def start(self, *, wait: bool = False) -> None:
        """Start the children now (otherwise on the first submit); `wait`: until each can take
        a batch (its imports done and its VAPID key loaded), or has died."""
        with self._guard:
            self._workers = [w for w in self._workers if w.dead is None]
            context = multiprocessing.get_context("spawn")
            while len(self._workers) < self.count:
                parent, child = context.Pipe()
                process = context.Process(
                    target=_child,
                    args=(child, self.config, self.settings),
                    name=f"campaign-delivery-{len(self._workers) + 1}",
                    daemon=True,
                )
                process.start()
                child.close()
                worker = _Worker(process, parent)
                worker.reader = threading.Thread(
                    target=self._read, args=(worker,), name=process.name + "-reader", daemon=True
                )
                worker.reader.start()
                self._workers.append(worker)
            workers = list(self._workers)
        if wait:
            for worker in workers:
                while worker.dead is None and not worker.ready.is_set():
                    worker.ready.wait(0.1)

    def pids(self) -> list[int]:
        """The live children's process ids."""
        return [w.process.pid for w in self._workers if w.dead is None]

    def deliver(self, requests: Sequence[SendRequest]) -> list[SendOutcome]:
        return self.submit(requests).result()

    def submit(self, requests: Sequence[SendRequest]) -> Future[list[SendOutcome]]:
        self.start()
        workers = list(self._workers)
        share = -(-len(requests) // len(workers))
        parts = [
            self._send(worker, list(requests[i * share : (i + 1) * share]))
            for i, worker in enumerate(workers)
            if requests[i * share : (i + 1) * share]
        ]
        return _joined(parts)

    def close(self) -> None:
        with self._guard:
            workers, self._workers = self._workers, []
        for worker in workers:
            with worker.sending, contextlib.suppress(OSError):
                worker.conn.send(None)
        for worker in workers:
            worker.process.join(timeout=30)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join(timeout=5)
            if worker.reader is not None:
                worker.reader.join(timeout=5)
            worker.conn.close()

    # ------------------------------------------------------------------ internals

    def _send(self, worker: _Worker, requests: list[SendRequest]) -> Future[list[SendOutcome]]:
        future: Future[list[SendOutcome]] = Future()
        number = next(self._numbers)
        with worker.lock:
            if worker.dead is not None:
                future.set_exception(DeliveryProcessError(worker.dead))
                return future
            worker.waiting[number] = future
        try:
            with worker.sending:  # not under `lock`: the reader must not wait on a full pipe
                worker.conn.send((number, requests))
        except OSError as exc:
            with worker.lock:
                lost = worker.waiting.pop(number, None)
            if lost is not None:
                lost.set_exception(DeliveryProcessError(f"{worker.process.name}: {exc}"))
        return future

    def _read(self, worker: _Worker) -> None:
        while True:
            try:
                number, (kind, value) = worker.conn.recv()
            except (EOFError, OSError):
                break
            if number == READY:
                worker.ready.set()
                continue
            with worker.lock:
                future = worker.waiting.pop(number, None)
            if future is None:
                continue
            if kind == "ok":
                future.set_result(value)
            else:
                future.set_exception(DeliveryProcessError(f"{worker.process.name}: {value}"))
        worker.process.join(timeout=5)
        reason = f"{worker.process.name} exited (code {worker.process.exitcode})"
        with worker.lock:
            worker.dead = reason
            worker.ready.set()
            waiting, worker.waiting = worker.waiting, {}
        if waiting:
            log.error("delivery process died with %d batch(es) in flight: %s", len(waiting), reason)
        for future in waiting.values():
            future.set_exception(DeliveryProcessError(reason))


def _joined(parts: list[Future[list[SendOutcome]]]) -> Future[list[SendOutcome]]:
    """One future for several: all outcomes in order, or the first failure."""
    out: Future[list[SendOutcome]] = Future()
    if not parts:
        out.set_result([])
        return out
    left = [len(parts)]
    guard = threading.Lock()

    def done(_: Future[list[SendOutcome]]) -> None:
        with guard:
            left[0] -= 1
            if left[0]:
                return
        failed = next((p.exception() for p in parts if p.exception() is not None), None)
        if failed is not None:
            out.set_exception(failed)
        else:
            out.set_result([o for p in parts for o in p.result()])

    for part in parts:
        part.add_done_callback(done)
    return out
