"""Group commit for the web service: concurrent requests share one write transaction.

A request validates its body itself (CPU only), hands the records to the
writer and waits for its own result. The writer takes everything that has
queued up, stores it in one transaction on a worker thread, and answers each
request only after that transaction committed — so a 201/202 always means
stored, once. While one transaction runs, the next requests queue up: the
busier the service, the larger the batches and the cheaper each write.

When a group's transaction fails, each request of it is tried again on its own,
so a record the database refuses fails only its own request (StoreRefused, a
4xx) and the others are stored. When the database itself is unreachable, every
request of the group fails with StoreUnavailable (503) and nothing is retried.
A unique key that another process took between our read and our write (two
workers storing the same event id, the same endpoint, the same new subscriber)
is no fault of the record: the store is tried again, and then sees that row.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from orchestrator.errors import CampaignError
from orchestrator.store import failures

MAX_BATCH = 500
RACE_RETRIES = 2


class StoreRefused(CampaignError):
    """The database refused this request's records (a 4xx: the records are at fault)."""


class StoreUnavailable(CampaignError):
    """The database could not be reached or failed as a whole (a 503: try again later)."""


def classify(exc: Exception) -> Exception:
    """A database error as the request should see it; any other error unchanged."""
    if failures.is_unavailable(exc):
        return StoreUnavailable("the database is unavailable; try again shortly")
    if failures.is_refused(exc):
        return StoreRefused(f"the database refused this record: {failures.reason(exc)}")
    return exc


@dataclass
class _Item:
    payload: Any
    future: asyncio.Future[Any]


@dataclass
class GroupWriter:
    """`await writer.submit(payload)`: `store(payloads)` runs on batches, one result per payload
    (an exception instance as a result is raised in its request only)."""

    store: Callable[[list[Any]], list[Any]]
    max_batch: int = MAX_BATCH
    _queue: asyncio.Queue[_Item] | None = None
    _task: asyncio.Task[None] | None = None
    _loop: asyncio.AbstractEventLoop | None = field(default=None, repr=False)

    async def submit(self, payload: Any) -> Any:
        loop = asyncio.get_running_loop()
        if self._queue is None or self._loop is not loop:
            self._queue, self._loop = asyncio.Queue(), loop
            self._task = None
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._run(self._queue))
        future: asyncio.Future[Any] = loop.create_future()
        self._queue.put_nowait(_Item(payload, future))
        result = await future
        if isinstance(result, BaseException):
            raise result
        return result

    async def close(self) -> None:
        """Stop the writer task (at shutdown: nothing is queued once requests have ended)."""
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _store(self, payloads: list[Any]) -> list[Any]:
        """`store` on a worker thread, again (up to RACE_RETRIES times) when another
        process took a unique key meanwhile: the next try reads the row it stored."""
        for attempt in range(RACE_RETRIES + 1):
            try:
                return await asyncio.to_thread(self.store, payloads)
            except Exception as exc:
                if not failures.is_conflict(exc) or attempt == RACE_RETRIES:
                    raise
        raise AssertionError("unreachable")

    async def _one_by_one(self, items: list[_Item], failure: Exception) -> list[Any]:
        """The group's transaction failed: each request on its own, so only a bad one fails."""
        first = classify(failure)
        if len(items) == 1 or isinstance(first, StoreUnavailable):
            return [first] * len(items)
        results: list[Any] = []
        for item in items:
            try:
                (result,) = await self._store([item.payload])
            except Exception as exc:
                result = classify(exc)
            results.append(result)
        return results

    async def _run(self, queue: asyncio.Queue[_Item]) -> None:
        while True:
            items = [await queue.get()]
            while len(items) < self.max_batch and not queue.empty():
                items.append(queue.get_nowait())
            try:
                results = await self._store([i.payload for i in items])
            except Exception as exc:
                results = await self._one_by_one(items, exc)
            for item, result in zip(items, results, strict=True):
                if not item.future.done():
                    item.future.set_result(result)
