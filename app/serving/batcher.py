"""Micro-batching: concurrent forecast requests for one model version share a single forward pass.

Requests that arrive while a batch is being computed (by the inference worker process, or a thread) wait for it
and then go through the network together; a request that finds it idle waits for the requests already parsed in
the same event-loop turn, or at most `max_wait` when that is set above zero. torch runs one batched pass in
about the time of one small pass, so throughput under concurrency approaches that of the HTTP stack itself.
Scheduling uses plain loop callbacks (no task or timeout object per request) to keep the per-request cost small.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from functools import partial

import numpy as np


@dataclass
class _Pending:
    windows: np.ndarray  # [n, L]
    calendar: np.ndarray | None  # [n, L, C]
    future: asyncio.Future[np.ndarray]


Predict = Callable[[np.ndarray, np.ndarray | None], np.ndarray]
RunBatch = Callable[[np.ndarray, np.ndarray | None], "asyncio.Future[np.ndarray]"]


def in_thread(predict: Predict, executor: Executor) -> RunBatch:
    """Run batches with `predict` on `executor` (the server process's inference thread)."""

    def run(windows: np.ndarray, calendar: np.ndarray | None) -> asyncio.Future[np.ndarray]:
        return asyncio.get_running_loop().run_in_executor(executor, partial(predict, windows, calendar))

    return run


class MicroBatcher:
    def __init__(
        self,
        run_batch: RunBatch,
        max_wait: float,
        max_size: int,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        self._run_batch = run_batch
        self._max_wait = max_wait
        self._max_size = max_size
        self._on_batch = on_batch or (lambda size: None)
        self._pending: list[_Pending] = []
        self._pending_rows = 0
        self._busy = False
        self._timer: asyncio.Handle | None = None

    async def submit(self, windows: np.ndarray, calendar: np.ndarray | None) -> np.ndarray:
        """Forecast windows [n, L] (+ calendar [n, L, C]) -> [n, H, Q], batched with concurrent callers."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[np.ndarray] = loop.create_future()
        self._pending.append(_Pending(windows, calendar, future))
        self._pending_rows += len(windows)
        if not self._busy:
            if self._pending_rows >= self._max_size:
                self._flush()
            elif self._timer is None and self._max_wait <= 0:
                self._timer = loop.call_soon(self._flush)
            elif self._timer is None:
                self._timer = loop.call_later(self._max_wait, self._flush)
        return await future

    def _take(self) -> list[_Pending]:
        batch, rows = [], 0
        while self._pending and (not batch or rows + len(self._pending[0].windows) <= self._max_size):
            item = self._pending.pop(0)
            batch.append(item)
            rows += len(item.windows)
        self._pending_rows -= rows
        return batch

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._busy or not self._pending:
            return
        batch = self._take()
        self._busy = True
        windows = np.concatenate([p.windows for p in batch])  # [sum n, L]
        calendar = None
        if batch[0].calendar is not None:
            calendar = np.concatenate([p.calendar for p in batch if p.calendar is not None])  # [sum n, L, C]
        self._on_batch(len(windows))
        try:
            job = self._run_batch(windows, calendar)
        except Exception as error:
            job = asyncio.get_running_loop().create_future()
            job.set_exception(error)
        job.add_done_callback(lambda done: self._finish(batch, done))

    def _finish(self, batch: list[_Pending], done: asyncio.Future[np.ndarray]) -> None:
        self._busy = False
        error = None if done.cancelled() else done.exception()
        output = None if done.cancelled() or error is not None else done.result()  # [sum n, H, Q]
        start = 0
        for pending in batch:
            rows = len(pending.windows)
            if pending.future.done():
                pass
            elif output is not None:
                pending.future.set_result(output[start : start + rows])  # [n, H, Q]
            else:
                pending.future.set_exception(error or asyncio.CancelledError())
            start += rows
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
