"""Loaded models and hot swapping: which version answers for a model name right now.

Requests resolve `(name, alias)` through an in-memory table that a background refresh keeps in step with
the registry. A moved alias (or a newly published latest version) is loaded, verified and warmed off the event
loop first and only then swapped in; in-flight requests keep the object they hold, so nothing fails. A
version that does not load is reported and the previous one keeps serving.

Unloading: the versions that a route (an alias or the default/latest version in use) points at always stay
loaded. Other versions (requested by explicit `?version=N`, pinned by a stream, or left behind by a moved alias)
are kept up to `max_unrouted` at a time; when a load or an alias move makes one more, the least recently
requested of them is unloaded, from the inference worker process too. A request that already holds an
unloaded version finishes on the thread path; on the worker path a batch sent after the unload answers 503,
and a retry loads the version again.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import ParamSpec, TypeVar

import numpy as np

from app.concurrency import run_blocking
from app.errors import NotFoundError, TswatchError
from app.registry.artifacts import ArtifactIntegrityError
from app.registry.loading import LoadedModel
from app.registry.store import Registry, VersionInfo
from app.serving.batcher import MicroBatcher
from app.serving.bodies import AnswerBodies, BodyReply
from app.serving.load_failures import LoadFailures, load_stamp
from app.serving.remote import InferenceWorker

P = ParamSpec("P")
T = TypeVar("T")

logger = logging.getLogger("tswatch.serving")

Selector = tuple[str, str | None]


RunBatch = Callable[[list[bytes]], "asyncio.Future[list[BodyReply]]"]


@dataclass
class ServedModel:
    loaded: LoadedModel
    batcher: MicroBatcher[bytes, BodyReply]

    @property
    def name(self) -> str:
        return self.loaded.name

    @property
    def version(self) -> int:
        return self.loaded.version


@dataclass
class PoolHooks:
    on_load: Callable[[str, int, bool], None] = lambda name, version, ok: None
    on_batch: Callable[[int], None] = lambda size: None
    on_unload: Callable[[str, int], None] = lambda name, version: None


def worker_key(name: str, version: int) -> str:
    """The name of a model version inside the inference worker."""
    return f"{name}:{version}"


@dataclass
class ModelPool:
    registry: Registry
    executor: ThreadPoolExecutor
    answer: AnswerBodies  # answers forecast request bodies on the inference thread (app.api supplies it)
    batch_max_wait: float = 0.002
    batch_max_size: int = 256
    hooks: PoolHooks = field(default_factory=PoolHooks)
    worker: InferenceWorker | None = None  # answers in a child process; None: the inference thread does
    max_unrouted: int = 4  # loaded versions that no route points at (see the module docstring); at least 1
    detect_executor: ThreadPoolExecutor | None = None  # detection's own thread; None: the inference thread
    _models: dict[tuple[str, int], ServedModel] = field(default_factory=dict)
    _routes: dict[Selector, int] = field(default_factory=dict)
    _locks: dict[tuple[str, int], asyncio.Lock] = field(default_factory=dict)
    _last_used: dict[tuple[str, int], int] = field(default_factory=dict)
    _ticks: Iterator[int] = field(default_factory=itertools.count)
    _failures: LoadFailures = field(default_factory=LoadFailures)  # corrupt versions until their files change

    def __post_init__(self) -> None:
        if self.max_unrouted < 1:
            raise ValueError(f"max_unrouted must be at least 1; got {self.max_unrouted}")

    async def infer(self, function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """CPU-bound model work on the single inference thread, so torch never competes with itself."""
        job = partial(function, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(self.executor, job)

    async def detect(self, function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Batch detection on its own thread: a long series never queues stream scoring or forecasts behind it."""
        executor = self.detect_executor or self.executor
        job = partial(function, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(executor, job)

    async def get(self, name: str, version: int | None = None, alias: str | None = None) -> ServedModel:
        if version is not None:
            info = await run_blocking(self.registry.get_version, name, version)
            return await self._use(await self._ensure(info), evict=True)
        selector = (name, alias)
        if selector not in self._routes:
            info = await run_blocking(self.registry.resolve, name, None, alias)
            served = await self._ensure(info)
            self._routes[selector] = served.version
            return await self._use(served, evict=True)
        return await self._use(self._models[(name, self._routes[selector])], evict=False)

    async def _use(self, served: ServedModel, evict: bool) -> ServedModel:
        """Record the request (for least-recently-used unloading); `evict` after a possible load."""
        self._last_used[(served.name, served.version)] = next(self._ticks)
        if evict:
            await self._evict()
        return served

    async def _evict(self) -> None:
        """Unload the least recently requested versions that no route points at, beyond `max_unrouted`."""
        routed = {(name, version) for (name, _), version in self._routes.items()}
        unrouted = sorted(set(self._models) - routed, key=lambda key: self._last_used.get(key, -1))
        for key in unrouted[: max(len(unrouted) - self.max_unrouted, 0)]:
            await self._unload(key)

    async def _unload(self, key: tuple[str, int]) -> None:
        if self._models.pop(key, None) is None:  # a concurrent eviction got there first
            return
        self._last_used.pop(key, None)
        if self.worker is not None:
            await self.worker.unload(worker_key(*key))
        self.hooks.on_unload(*key)
        logger.info("unloaded %s v%s: no route points at it and it was not requested recently", *key)

    async def _ensure(self, info: VersionInfo) -> ServedModel:
        key = (info.name, info.version)
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            if key not in self._models:
                self._models[key] = await self._load(info)
        return self._models[key]

    async def _load(self, info: VersionInfo) -> ServedModel:
        stamp = await run_blocking(load_stamp, info)
        if (known := self._failures.recall(info, stamp)) is not None:
            raise known  # not read nor hashed again: nothing it depends on changed
        try:
            loaded = await run_blocking(self._load_and_warm, info)
            run_batch = await self._batch_runner(loaded)
        except TswatchError as error:
            self.hooks.on_load(info.name, info.version, False)
            if isinstance(error, ArtifactIntegrityError):
                self._failures.remember(info, stamp, error)
            raise
        self._failures.forget(info)
        self.hooks.on_load(info.name, info.version, True)
        batcher = MicroBatcher(run_batch, self.batch_max_wait, self.batch_max_size)
        return ServedModel(loaded=loaded, batcher=batcher)

    async def _batch_runner(self, loaded: LoadedModel) -> RunBatch:
        ref = {"name": loaded.name, "version": loaded.version}
        if self.worker is not None:
            key = worker_key(loaded.name, loaded.version)
            await self.worker.load(key, loaded.forecaster)
            return self._observed(partial(self.worker.answer, key, ref))

        def run_in_thread(bodies: list[bytes]) -> asyncio.Future[list[BodyReply]]:
            loop = asyncio.get_running_loop()
            return loop.run_in_executor(self.executor, self.answer, loaded.forecaster, ref, bodies)

        return self._observed(run_in_thread)

    def _observed(self, run_batch: RunBatch) -> RunBatch:
        """Report the series of every forward pass (known only once the bodies are parsed) to `on_batch`."""

        def run(bodies: list[bytes]) -> asyncio.Future[list[BodyReply]]:
            job = run_batch(bodies)
            job.add_done_callback(self._report_batch)
            return job

        return run

    def _report_batch(self, job: asyncio.Future[list[BodyReply]]) -> None:
        if not job.cancelled() and job.exception() is None:
            series = sum(reply.series for reply in job.result())
            if series:
                self.hooks.on_batch(series)

    def _load_and_warm(self, info: VersionInfo) -> LoadedModel:
        loaded = self.registry.load(info)
        spec = loaded.forecaster.spec
        calendar = np.zeros((1, spec.window, 2 * len(spec.calendar_features)), dtype=np.float32)
        loaded.forecaster.predict(
            np.zeros((1, spec.window), dtype=np.float32) + 1.0, calendar if spec.calendar_features else None
        )
        return loaded

    async def load_defaults(self) -> list[str]:
        """Load the default version of every registered model; returns the problems met."""
        problems = []
        for model in await run_blocking(self.registry.list_models):
            try:
                await self.get(model.name)
            except TswatchError as error:
                problems.append(f"{model.name}: {error.detail}")
                logger.error("could not load model %s: %s", model.name, error.detail)
        return problems

    async def refresh(self) -> None:
        """Re-resolve every route in use; swap in versions that load, keep the old ones otherwise."""
        for selector, current in list(self._routes.items()):
            name, alias = selector
            try:
                info = await run_blocking(self.registry.resolve, name, None, alias)
            except NotFoundError:
                # The alias (or model) is gone: forget the route, so requests for it get a 404 again.
                self._routes.pop(selector, None)
                logger.info("%s%s no longer resolves; route dropped", name, f"@{alias}" if alias else "")
                continue
            except TswatchError:
                continue
            if info.version == current or await self._failed_before(info):
                continue
            try:
                await self._ensure(info)
            except TswatchError as error:
                logger.error(
                    "keeping %s v%s: v%s failed to load: %s", name, current, info.version, error.detail
                )
                continue
            self._routes[selector] = info.version
            logger.info("now serving %s%s v%s", name, f"@{alias}" if alias else "", info.version)
        await self._evict()  # versions whose routes moved away or were dropped may now be over the cap

    async def _failed_before(self, info: VersionInfo) -> bool:
        """The version is not loaded and failed verification, and neither its files nor its row changed since
        (that failure was reported then; the watcher does not re-read and re-hash it every poll)."""
        if (info.name, info.version) in self._models:
            return False
        return self._failures.recall(info, await run_blocking(load_stamp, info)) is not None

    def loaded_versions(self) -> list[tuple[str, int]]:
        return sorted(self._models)

    def routes(self) -> dict[Selector, int]:
        return dict(self._routes)

    async def close(self) -> None:
        for served in self._models.values():
            await served.batcher.close()
