"""Group commit for the web service: concurrent requests share one write transaction.

A request validates its body itself (CPU only), hands the records to the
writer and waits for its own result. The writer takes everything that has
queued up, stores it in one transaction on a worker thread, and answers each
request only after that transaction committed — so a 201/202 always means
stored, once. While one transaction runs, the next requests queue up: the
busier the service, the larger the batches and the cheaper each write.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

MAX_BATCH = 500


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

    async def _run(self, queue: asyncio.Queue[_Item]) -> None:
        while True:
            items = [await queue.get()]
            while len(items) < self.max_batch and not queue.empty():
                items.append(queue.get_nowait())
            try:
                results = await asyncio.to_thread(self.store, [i.payload for i in items])
            except Exception as exc:  # the transaction failed: every request in it fails
                results = [exc] * len(items)
            for item, result in zip(items, results, strict=True):
                if not item.future.done():
                    item.future.set_result(result)
