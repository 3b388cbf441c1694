"""Group commit: writes submitted while another is being stored go to the database together, in ONE transaction.

Every append used to be its own transaction (BEGIN IMMEDIATE on SQLite, a thread hop, a commit), and concurrent
appends queued behind each other for the database's single write lock. Here one drain task writes whatever is
pending: a write submitted while the database is idle is stored at once, alone (no added latency); those that
arrive meanwhile are stored together as soon as it finishes. Each submitter is answered only after the
transaction holding its item committed, so an acknowledged point is still a stored one.

When a group's transaction fails (one stream's revision moved, one stream was deleted, ...), nothing of it was
stored: each item is then written again in a transaction of its own, so each submitter gets exactly the outcome
(result or error) a write of its own would have given, and no item fails because of another.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from app.concurrency import run_blocking

T = TypeVar("T")
R = TypeVar("R")

MAX_GROUP = 256  # items per transaction: bounds one transaction's work (and its lock time on PostgreSQL)


class GroupWriter(Generic[T, R]):
    """Coalesces concurrent `submit`s into calls of `write` (blocking, ONE transaction for all its items,
    results in item order), run in a worker thread. Callers must not submit two items that conflict within one
    transaction (here: the caller holds the stream's lock, so a stream appears at most once per group)."""

    def __init__(self, write: Callable[[Sequence[T]], list[R]], max_group: int = MAX_GROUP) -> None:
        self._write = write
        self._max_group = max_group
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._drain: asyncio.Task[None] | None = None

    async def submit(self, item: T) -> R:
        """`item` stored (its transaction committed): `write`'s result for it, or the error writing it alone
        raised."""
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if self._drain is None or self._drain.done():
            self._drain = asyncio.create_task(self._drain_pending())
        return await asyncio.shield(future)  # a cancelled caller leaves the write (and the others) alone

    async def _drain_pending(self) -> None:
        while self._pending:
            group = self._pending[: self._max_group]
            del self._pending[: self._max_group]
            try:
                outcomes: list[R | Exception] = await run_blocking(
                    self._write_group, [item for item, _ in group]
                )
            except asyncio.CancelledError:  # the loop is shutting down: nobody waits in vain
                for _, future in [*group, *self._pending]:
                    future.cancel()
                self._pending.clear()
                raise
            except Exception as error:  # not written at all (e.g. no worker thread left)
                outcomes = [error] * len(group)
            for (_, future), outcome in zip(group, outcomes, strict=True):
                if future.done():
                    continue
                if isinstance(outcome, BaseException):
                    future.set_exception(outcome)
                else:
                    future.set_result(outcome)

    def _write_group(self, items: list[T]) -> list[R | Exception]:
        """One transaction for all `items`; when it fails, one transaction per item (see the module docstring)."""
        try:
            return [*self._write(items)]
        except Exception as error:
            if len(items) == 1:
                return [error]
        outcomes: list[R | Exception] = []
        for item in items:
            try:
                outcomes.append(self._write([item])[0])
            except Exception as error:
                outcomes.append(error)
        return outcomes
