"""Micro-batching: concurrent forecast requests for one model version share a single forward pass.

Requests that arrive while a batch is being answered (by the inference worker process, or a thread) wait for it
and then go together; a request that finds the model idle waits for the requests already parsed in the same
event-loop turn, or at most `max_wait` when that is set above zero. torch runs one batched pass in about the time
of one small pass, so throughput under concurrency approaches that of the HTTP stack itself. Scheduling uses
plain loop callbacks (no task or timeout object per request) to keep the per-request cost small.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


@dataclass
class _Pending(Generic[Item, Result]):
    item: Item
    future: asyncio.Future[Result]


class MicroBatcher(Generic[Item, Result]):
    """Collects items from concurrent callers; `run_batch(items)` answers a batch with one result per item."""

    def __init__(
        self,
        run_batch: Callable[[list[Item]], asyncio.Future[list[Result]]],
        max_wait: float,
        max_size: int,
    ) -> None:
        self._run_batch = run_batch
        self._max_wait = max_wait
        self._max_size = max_size
        self._pending: list[_Pending[Item, Result]] = []
        self._busy = False
        self._timer: asyncio.Handle | None = None

    async def submit(self, item: Item) -> Result:
        """The result for `item`, computed in a batch with the items of concurrent callers."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Result] = loop.create_future()
        self._pending.append(_Pending(item, future))
        if not self._busy:
            if len(self._pending) >= self._max_size:
                self._flush()
            elif self._timer is None and self._max_wait <= 0:
                self._timer = loop.call_soon(self._flush)
            elif self._timer is None:
                self._timer = loop.call_later(self._max_wait, self._flush)
        return await future

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._busy or not self._pending:
            return
        batch, self._pending = self._pending[: self._max_size], self._pending[self._max_size :]
        self._busy = True
        try:
            job = self._run_batch([pending.item for pending in batch])
        except Exception as error:
            job = asyncio.get_running_loop().create_future()
            job.set_exception(error)
        job.add_done_callback(lambda done: self._finish(batch, done))

    def _finish(self, batch: list[_Pending[Item, Result]], done: asyncio.Future[list[Result]]) -> None:
        self._busy = False
        error = None if done.cancelled() else done.exception()
        results = None if done.cancelled() or error is not None else done.result()
        for index, pending in enumerate(batch):
            if pending.future.done():
                continue
            if results is not None:
                pending.future.set_result(results[index])
            else:
                pending.future.set_exception(error or asyncio.CancelledError())
        if self._pending:
            self._flush()

    async def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for pending in self._pending:
            if not pending.future.done():
                pending.future.cancel()
        self._pending.clear()
