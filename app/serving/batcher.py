"""Micro-batching: concurrent forecast requests for one model version share a single forward pass.

Requests queue up while the inference thread is busy (or for at most `max_wait` seconds), then go through the
network together; torch runs one batched pass in about the time of one small pass, so throughput under
concurrency approaches that of the HTTP stack itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass

import numpy as np


@dataclass
class _Pending:
    windows: np.ndarray  # [n, L]
    calendar: np.ndarray | None  # [n, L, C]
    future: asyncio.Future[np.ndarray]


Predict = Callable[[np.ndarray, np.ndarray | None], np.ndarray]


class MicroBatcher:
    def __init__(
        self,
        predict: Predict,
        executor: Executor,
        max_wait: float,
        max_size: int,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        self._predict = predict
        self._executor = executor
        self._max_wait = max_wait
        self._max_size = max_size
        self._on_batch = on_batch or (lambda size: None)
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None

    async def submit(self, windows: np.ndarray, calendar: np.ndarray | None) -> np.ndarray:
        """Forecast windows [n, L] (+ calendar [n, L, C]) -> [n, H, Q], batched with concurrent callers."""
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._run())
        future: asyncio.Future[np.ndarray] = asyncio.get_running_loop().create_future()
        await self._queue.put(_Pending(windows, calendar, future))
        return await future

    async def _collect(self) -> list[_Pending]:
        batch = [await self._queue.get()]
        size = len(batch[0].windows)
        deadline = asyncio.get_running_loop().time() + self._max_wait
        while size < self._max_size:
            remaining = deadline - asyncio.get_running_loop().time()
            try:
                item = (
                    self._queue.get_nowait()
                    if remaining <= 0
                    else await asyncio.wait_for(self._queue.get(), remaining)
                )
            except (asyncio.QueueEmpty, TimeoutError):
                break
            batch.append(item)
            size += len(item.windows)
        return batch

    async def _run(self) -> None:
        while True:
            batch = await self._collect()
            try:
                outputs = await asyncio.get_running_loop().run_in_executor(
                    self._executor, self._forward, batch
                )
            except Exception as error:
                for pending in batch:
                    if not pending.future.done():
                        pending.future.set_exception(error)
                continue
            for pending, output in zip(batch, outputs, strict=True):
                if not pending.future.done():
                    pending.future.set_result(output)

    def _forward(self, batch: list[_Pending]) -> list[np.ndarray]:
        windows = np.concatenate([p.windows for p in batch])  # [sum n, L]
        calendar = None if batch[0].calendar is None else np.concatenate([p.calendar for p in batch])  # type: ignore[misc]
        self._on_batch(len(windows))
        output = self._predict(windows, calendar)  # [sum n, H, Q]
        splits = np.cumsum([len(p.windows) for p in batch])[:-1]
        return np.split(output, splits)

    async def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
