"""Everything the routes need, built in the app's lifespan and torn down with it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import torch

from app.api.metrics import ApiMetrics
from app.registry.database import Database
from app.registry.factory import open_database, open_registry
from app.registry.keys import KeyStore
from app.registry.store import Registry
from app.serving.pool import ModelPool, PoolHooks
from app.settings import Settings
from app.streams.service import StreamService

logger = logging.getLogger("tswatch.api")

# The event loop and the inference thread share the GIL; at Python's default 5 ms switch interval every torch
# call in the inference thread can wait a full interval for a busy event loop (a convoy). 0.5 ms keeps both moving.
GIL_SWITCH_INTERVAL = 0.0005


@dataclass
class Services:
    settings: Settings
    metrics: ApiMetrics
    database: Database
    registry: Registry
    keys: KeyStore
    pool: ModelPool
    executor: ThreadPoolExecutor
    streams: StreamService | None = None
    ready: bool = False
    load_problems: list[str] = field(default_factory=list)
    _watcher: asyncio.Task[None] | None = None

    @classmethod
    def open(cls, settings: Settings, metrics: ApiMetrics) -> Services:
        torch.set_num_threads(settings.torch_threads)
        sys.setswitchinterval(GIL_SWITCH_INTERVAL)
        database = open_database(settings)
        registry = open_registry(settings, database)
        keys = KeyStore(database)
        if settings.admin_key is not None:
            keys.ensure_bootstrap(settings.admin_key.get_secret_value())
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tswatch-inference")
        hooks = PoolHooks(on_load=metrics.model_loaded, on_batch=metrics.batch)
        pool = ModelPool(
            registry,
            executor,
            batch_max_wait=settings.batch_max_wait_ms / 1000.0,
            batch_max_size=settings.batch_max_size,
            hooks=hooks,
        )
        services = cls(settings, metrics, database, registry, keys, pool, executor)
        services.streams = StreamService(database, pool)
        return services

    async def start(self) -> None:
        self.load_problems = await self.pool.load_defaults()
        self.ready = True
        self._watcher = asyncio.create_task(self._watch_aliases())

    async def _watch_aliases(self) -> None:
        while True:
            await asyncio.sleep(self.settings.alias_poll_seconds)
            try:
                await self.pool.refresh()
            except Exception:
                logger.exception("alias refresh failed")

    async def stop(self) -> None:
        self.ready = False
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
        await self.pool.close()
        self.executor.shutdown(wait=True)
        self.database.dispose()
