"""Prometheus remote write into streams: series -> streams by the label rule, new streams within a bound, and
retried samples skipped.

Prometheus resends a whole batch when an answer is a 5xx or times out, so a batch may arrive twice (or arrive
after part of it was stored by an answer that never reached Prometheus). A sample whose timestamp is not after
its stream's newest stored timestamp is therefore skipped (counted as "duplicate"), never stored twice and never
an error. The check and the append happen under one lock per stream in this process (Prometheus sends a series
through one shard, in order; replicas behind one load balancer are not coordinated for this).

A series whose stream does not exist gets a self-learning stream (the settings' learning period and
sensitivity) while fewer than `max_streams` streams exist; the samples of further new series are dropped and
counted ("stream_limit"), and the rest of the batch is stored. Staleness markers (Prometheus's "series gone"
NaN) are skipped; other NaN or infinite values are stored as missing readings. All samples of one request are
stored in one transaction (`StreamService.append_many`): a storage failure stores none and answers 503, so
Prometheus retries and nothing is lost. When one stream refuses its samples (a 4xx, e.g. it is pinned to a
deleted model version), the other streams are stored one by one and that stream's samples are counted
"refused": a 4xx would make Prometheus drop the whole batch, and every later one holding that series.
"""

from __future__ import annotations

import logging
import math
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.exc import DBAPIError

from app.anomaly.sensitivity import DEFAULT_SENSITIVITY
from app.concurrency import run_blocking
from app.errors import TswatchError, UnavailableError
from app.prometheus.labels import LabelRule
from app.prometheus.wire import Series, is_stale_marker
from app.streams.locks import LockRegistry
from app.streams.queries import count_streams, last_timestamps
from app.streams.scoring import Reading
from app.streams.service import StreamService
from app.timestamps import from_epoch_millis

# Outcomes of samples, as counted in tswatch_remote_write_samples_total{outcome}.
STORED = "stored"
DUPLICATE = "duplicate"  # not after the stream's newest timestamp (a retried batch) or repeated in the batch
STALE = "stale"  # Prometheus's staleness marker
BAD_TIMESTAMP = "bad_timestamp"  # outside the timestamps tswatch stores
UNMATCHED = "unmatched"  # the series has none of the rule's labels
STREAM_LIMIT = "stream_limit"  # a new series while max_streams streams exist
REFUSED = "refused"  # the stream refused them (a 4xx, e.g. its model version was deleted)

logger = logging.getLogger("tswatch.prometheus")

OnSamples = Callable[[str, int], None]


@dataclass(frozen=True)
class NewStreams:
    """How streams created by remote write are configured."""

    learning_points: int | None = None
    sensitivity: float | None = None


@dataclass(frozen=True)
class WriteSummary:
    outcomes: dict[str, int]  # samples per outcome
    created: list[str]  # streams created by this request


class StorageUnavailableError(UnavailableError):
    title = "Storage unavailable"
    slug = "storage-unavailable"


class RemoteWriteIngest:
    def __init__(
        self,
        streams: StreamService,
        rule: LabelRule,
        max_streams: int,
        new_streams: NewStreams,
        on_samples: OnSamples | None = None,
    ) -> None:
        self.streams = streams
        self.rule = rule
        self.max_streams = max_streams
        self.new_streams = new_streams
        self.on_samples = on_samples
        self._locks = LockRegistry()

    async def write(self, series: Sequence[Series]) -> WriteSummary:
        """Store the samples of one remote write request (see the module docstring)."""
        outcomes: Counter[str] = Counter()
        grouped = self._group(series, outcomes)
        async with self._locks.hold_all(grouped):
            try:
                created, batches = await self._prepare(grouped, outcomes)
                await self._append(batches, outcomes)
            except DBAPIError as error:
                raise StorageUnavailableError(
                    f"the database did not take the samples ({type(error.orig).__name__}); send the request "
                    "again (samples stored already are skipped)"
                ) from error
        if self.on_samples is not None:
            for outcome, count in outcomes.items():
                self.on_samples(outcome, count)
        return WriteSummary(dict(outcomes), created)

    async def _append(self, batches: list[tuple[str, list[Reading]]], outcomes: Counter[str]) -> None:
        """All streams in one transaction; when a stream refuses its points (a 4xx: say, it is bound to a model
        version that was deleted), the others are appended one by one and only that stream's samples are
        dropped (counted as "refused"), so one stream cannot hold back the rest forever."""
        if not batches:
            return
        try:
            await self.streams.append_many(batches)
        except TswatchError as error:
            if error.status >= 500:
                raise
        else:
            outcomes[STORED] += sum(len(points) for _, points in batches)
            return
        for stream_id, points in batches:
            try:
                await self.streams.append(stream_id, points)
            except TswatchError as error:
                if error.status >= 500:
                    raise
                logger.warning(
                    "remote write: stream %r refused %d samples: %s", stream_id, len(points), error
                )
                outcomes[REFUSED] += len(points)
            else:
                outcomes[STORED] += len(points)

    def _group(self, series: Sequence[Series], outcomes: Counter[str]) -> dict[str, list[Reading]]:
        """Readings per stream (any order yet); counts the samples that go nowhere."""
        grouped: dict[str, list[Reading]] = defaultdict(list)
        for item in series:
            stream_id = self.rule.stream_id(item.labels)
            if stream_id is None:
                outcomes[UNMATCHED] += len(item.samples)
                continue
            for millis, value in item.samples:
                if is_stale_marker(value):
                    outcomes[STALE] += 1
                    continue
                try:
                    stamp = from_epoch_millis(millis)
                except ValueError:
                    outcomes[BAD_TIMESTAMP] += 1
                    continue
                grouped[stream_id].append((stamp, value if math.isfinite(value) else None))
        return grouped

    async def _prepare(
        self, grouped: dict[str, list[Reading]], outcomes: Counter[str]
    ) -> tuple[list[str], list[tuple[str, list[Reading]]]]:
        """Create the new streams there is room for; the new readings of every stream that exists."""
        newest = await run_blocking(last_timestamps, self.streams.database, list(grouped))
        unknown = sorted(stream_id for stream_id in grouped if stream_id not in newest)
        created = await self._create(unknown) if unknown else []
        for stream_id in unknown[len(created) :]:
            outcomes[STREAM_LIMIT] += len(grouped.pop(stream_id))
        batches = []
        for stream_id, readings in grouped.items():
            fresh = only_new(readings, newest.get(stream_id))
            outcomes[DUPLICATE] += len(readings) - len(fresh)
            if fresh:
                batches.append((stream_id, fresh))
        return created, batches

    async def _create(self, unknown: list[str]) -> list[str]:
        """Create self-learning streams for the first of `unknown` while there is room; those created."""
        room = max(0, self.max_streams - await run_blocking(count_streams, self.streams.database))
        created = unknown[:room]
        sensitivity = self.new_streams.sensitivity
        for stream_id in created:
            await self.streams.upsert(
                stream_id,
                None,
                sensitivity=DEFAULT_SENSITIVITY if sensitivity is None else sensitivity,
                learning_points=self.new_streams.learning_points,
            )
        return created


def only_new(readings: list[Reading], newest: datetime | None) -> list[Reading]:
    """`readings` in time order with those at or before `newest` (stored already) and repeated timestamps left
    out."""
    fresh: list[Reading] = []
    for stamp, value in sorted(readings, key=lambda reading: reading[0]):
        if (newest is None or stamp > newest) and (not fresh or stamp > fresh[-1][0]):
            fresh.append((stamp, value))
    return fresh
