"""Everything the routes need, built in the app's lifespan and torn down with it."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import torch

from app.api import inference_worker
from app.api.body_process import DetectBodyParser
from app.api.forecast_answers import answer_forecasts
from app.api.metrics import ApiMetrics
from app.concurrency import run_blocking
from app.jobs.service import JobService
from app.keys.store import KeyStore
from app.prometheus.export import StreamMetrics
from app.prometheus.ingest import NewStreams, RemoteWriteIngest
from app.prometheus.labels import LabelRule
from app.registry.factory import open_registry
from app.registry.gc import collect_at_start
from app.registry.store import Registry
from app.serving.detection import DetectionService
from app.serving.online_intervals import OnlineIntervals
from app.serving.pool import ModelPool, PoolHooks
from app.serving.remote import InferenceWorker
from app.settings import Settings
from app.storage.database import Database
from app.storage.schema import open_database
from app.streams.service import StreamService
from app.webhooks.delivery import DeliveryWorker
from app.webhooks.inbound import IdempotencyStore, InboundSecretStore
from app.webhooks.ingest import PointIngest
from app.webhooks.outbox import Outbox
from app.webhooks.ssrf import DestinationPolicy
from app.webhooks.subscriptions import EndpointStore

logger = logging.getLogger("tswatch.api")

# The event loop and the inference thread share the GIL; at Python's default 5 ms switch interval every torch
# call in the inference thread can wait a full interval for a busy event loop (a convoy). 0.1 ms keeps both moving (measured with bench/serve.py).
GIL_SWITCH_INTERVAL = 0.0001


@dataclass(frozen=True)
class Readiness:
    ready: bool
    checks: dict[str, str]
    models: list[tuple[str, int]]  # (name, version) loaded


@dataclass
class Services:
    settings: Settings
    metrics: ApiMetrics
    database: Database
    registry: Registry
    keys: KeyStore
    pool: ModelPool
    executor: ThreadPoolExecutor
    webhooks: Webhooks
    streams: StreamService
    ingest: PointIngest
    detection: DetectionService
    detect_bodies: DetectBodyParser
    jobs: JobService  # training jobs, run in worker processes
    intervals: OnlineIntervals  # online interval calibration from fed actuals
    remote_write: RemoteWriteIngest
    stream_metrics: StreamMetrics | None  # None: per-stream metrics are off (settings.stream_metrics)
    ready: bool = False
    load_problems: list[str] = field(default_factory=list)
    _watcher: asyncio.Task[None] | None = None

    @classmethod
    def open(cls, settings: Settings, metrics: ApiMetrics) -> Services:
        torch.set_num_threads(settings.torch_threads)
        sys.setswitchinterval(GIL_SWITCH_INTERVAL)
        database = open_database(settings)
        registry = open_registry(settings, database)
        collect_at_start(registry)  # leftovers of publishes killed earlier
        keys = KeyStore(database)
        if settings.admin_key is not None:
            keys.ensure_bootstrap(settings.admin_key.get_secret_value())
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tswatch-inference")
        detect_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tswatch-detect")
        hooks = PoolHooks(
            on_load=metrics.model_loaded, on_batch=metrics.batch, on_unload=metrics.model_unloaded
        )
        pool = ModelPool(
            registry,
            executor,
            batch_max_wait=settings.batch_max_wait_ms / 1000.0,
            batch_max_size=settings.batch_max_size,
            hooks=hooks,
            answer=answer_forecasts,
            detect_executor=detect_executor,
            worker=(
                InferenceWorker(
                    inference_worker.__name__, settings.torch_threads, on_restart=metrics.worker_restarted
                )
                if settings.inference_process
                else None
            ),
        )
        webhooks = Webhooks.open(settings, database)
        # alarm events are recorded in the outbox inside the transaction that stores the alarm
        streams = StreamService(
            database,
            pool,
            alarm_sink=webhooks.outbox.record_alarms,
            snapshot_points=settings.stream_snapshot_points,
        )
        ingest = PointIngest(streams, webhooks.secrets, webhooks.idempotency)
        intervals = OnlineIntervals(database, pool)
        if settings.stream_interval_calibration:
            streams.after_store = intervals.feed_streams  # model-bound streams' readings are actuals
        remote_write = RemoteWriteIngest(
            streams,
            LabelRule.of(settings.remote_write_labels),
            settings.remote_write_max_streams,
            NewStreams(settings.remote_write_learning_points, settings.remote_write_sensitivity),
            on_samples=metrics.remote_write_samples,
        )
        return cls(
            settings=settings,
            metrics=metrics,
            database=database,
            registry=registry,
            keys=keys,
            pool=pool,
            executor=executor,
            webhooks=webhooks,
            streams=streams,
            detect_bodies=DetectBodyParser(),
            jobs=JobService(settings, database),
            intervals=intervals,
            ingest=ingest,
            detection=DetectionService(pool, settings.max_detect_points, on_anomalies=metrics.anomalies),
            remote_write=remote_write,
            stream_metrics=(
                StreamMetrics(database, settings.stream_metrics_max) if settings.stream_metrics else None
            ),
        )

    async def readiness(self) -> Readiness:
        """Database reachable and the default models loaded and warmed (`GET /readyz`). `database` names the
        backend ("postgresql: reachable"), so a replica on the wrong URL shows; `registry` is kept for clients
        that read it (the registry lives in that database)."""
        checks = {"models": "loaded" if self.ready else "loading"}
        dialect = self.database.engine.dialect.name
        try:
            await run_blocking(self.database.ping)
            reachable = "reachable"
        except Exception as error:
            reachable = f"unreachable: {type(error).__name__}"
        checks["database"] = f"{dialect}: {reachable}"
        checks["registry"] = reachable
        if self.load_problems:
            checks["load_problems"] = "; ".join(self.load_problems)
        ready = self.ready and reachable == "reachable"
        return Readiness(ready, checks, self.pool.loaded_versions())

    async def start(self) -> None:
        if self.pool.worker is not None:
            await self.pool.worker.start()
        self.detect_bodies.warm()
        self.load_problems = await self.pool.load_defaults()
        gc.collect()
        gc.freeze()  # models and startup objects leave the collector's view: shorter pauses under load
        self.ready = True
        self._watcher = asyncio.create_task(self._watch_aliases())
        self.webhooks.worker.start()
        await self.jobs.start()

    async def _watch_aliases(self) -> None:
        while True:
            await asyncio.sleep(self.settings.alias_poll_seconds)
            try:
                await self.pool.refresh()
            except Exception:
                logger.exception("alias refresh failed")

    async def stop(self) -> None:
        self.ready = False
        await self.jobs.stop()
        await self.webhooks.worker.stop()
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
        await self.pool.close()
        if self.pool.worker is not None:
            await self.pool.worker.close()
        self.executor.shutdown(wait=True)
        self.detect_bodies.close()
        if self.pool.detect_executor is not None:
            self.pool.detect_executor.shutdown(wait=True)
        self.database.dispose()


@dataclass
class Webhooks:
    """Inbound secrets and idempotency, outbound endpoints, the outbox and its delivery worker."""

    secrets: InboundSecretStore
    idempotency: IdempotencyStore
    outbox: Outbox
    endpoints: EndpointStore
    worker: DeliveryWorker

    @classmethod
    def open(cls, settings: Settings, database: Database) -> Webhooks:
        policy = DestinationPolicy(settings.webhook_allow_cidrs)
        schedule = settings.webhook_retry_schedule
        outbox = Outbox(database, first_delay=schedule[0])
        worker = DeliveryWorker(
            database,
            outbox,
            policy,
            schedule,
            timeout=settings.webhook_timeout_seconds,
            disable_after=settings.webhook_disable_after,
            endpoint_concurrency=settings.webhook_endpoint_concurrency,
        )
        return cls(
            InboundSecretStore(database),
            IdempotencyStore(database),
            outbox,
            EndpointStore(database, outbox, policy),
            worker,
        )
