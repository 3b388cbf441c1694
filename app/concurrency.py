"""The one helper for blocking work (database, files, JSON encoding of large answers) off the event loop.

`run_blocking` runs a function in the event loop's default thread pool. Model computation does NOT go through
it: `ModelPool.infer` runs on the pool's dedicated single inference thread so that torch never competes with
itself (see `app.serving.pool`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


async def run_blocking(function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """`function(*args, **kwargs)` in a worker thread; the event loop keeps serving meanwhile."""
    return await asyncio.to_thread(function, *args, **kwargs)
