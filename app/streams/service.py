"""Streams kept by the server: configuration, incremental scoring and durable state.

`append` checks the batch (only malformed input is refused: duplicate, late and missing readings are input,
answered with their `sampling` and `score: null`), scores it on the inference thread (`StreamState`: the one
detector, plus a registered model's forecasts for a model-bound stream), and writes the points and the episode
changes in ONE database transaction that also bumps the row's `revision` and `point_count`. A point is
acknowledged only after that commit, so a crash (even kill -9) loses no acknowledged point. Single-stream appends
that are ready while another is being stored share one transaction (group commit, app.streams.group_commit). The scoring state
stays hot in memory and is stored as a snapshot every `snapshot_points` readings; a restart (or another
process's write) rebuilds it from the snapshot plus a replay of the stored readings, bitwise as an uninterrupted
run (app.streams.hot): the detector refits inline at readings fixed by its schedule, so scores never depend on
timing. A per-stream asyncio lock serialises appends within the process; across processes (replicas over one
database) the write transaction locks the stream row (an UPDATE conditional on the `revision` the points were
scored against; on SQLite the write lock first), and when the row's `revision` moved since the state was scored,
the state is rebuilt and the points scored again (a bounded number of times before a 409).

Streams without a `model` learn their own forecaster (the detector's learning period, `learning_points`). A
model-bound stream follows `alias` (or the default version) of its model unless a version is pinned; when the
version that answers changes, the next append rebuilds the forecasts on the new version (`StreamState.bind`).
Changing a stream's model, alias, version or learning_points restarts its detector (it learns again from the
next readings; positions keep counting and an open alarm carries over); changing sensitivity or alerts keeps it.
With `alerts` false (the stream's option, or `alerts=False` for one append) alarms are stored as usual but the
alarm sink is told not to announce them (no webhooks).
"""

from __future__ import annotations

import asyncio
import json
import math
import random
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, insert, inspect, or_, select, text, update
from sqlalchemy.orm import Session, defer

from app.anomaly import AlarmEvent, DetectorConfig, Episode
from app.anomaly.detector import DEFAULT_LEARNING_POINTS
from app.anomaly.episodes import PointRecord
from app.anomaly.points import ScoredPoint
from app.anomaly.sensitivity import DEFAULT_SENSITIVITY, validate_sensitivity
from app.concurrency import run_blocking
from app.errors import ConflictError, InvalidInputError, NotFoundError, TswatchError
from app.registry.store import VersionNotFoundError
from app.serving.pool import ModelPool
from app.settings import DEFAULT_STREAM_SNAPSHOT_POINTS
from app.storage.database import Database
from app.storage.tables.streams import StreamEpisodeRow, StreamPointRow, StreamRow
from app.streams.group_commit import GroupWriter
from app.streams.hot import HotStream, StoredStream, not_found, read_stored, replay
from app.streams.locks import LockRegistry
from app.streams.queries import StreamSummary, latest_points, stream_summaries
from app.streams.scoring import DetectorStatus, Reading, ServingModel, StreamState
from app.timestamps import from_state_iso, to_state_iso, utc_now

MAX_STREAM_ID = 200
MAX_CACHED_STATES = 10_000
MAX_WRITE_ATTEMPTS = 8  # scorings of one append when other processes keep writing the stream meanwhile


@dataclass(frozen=True)
class StreamInfo:
    id: str
    model: str | None  # None: a self-learning stream
    alias: str | None
    version: int | None  # pinned version, None = follow alias / default
    sensitivity: float
    alerts: bool
    created_at: datetime
    updated_at: datetime
    last_timestamp: datetime | None  # the newest timestamp received
    point_count: int
    state_model_version: int | None  # model version the forecasts were built with (None: self-learning)
    open_episode: Episode | None
    detector: DetectorStatus


@dataclass(frozen=True)
class AppendResult:
    stream: StreamInfo
    model_name: str | None
    model_version: int | None
    points: list[ScoredPoint]
    events: list[AlarmEvent]


@dataclass(frozen=True)
class StagedAppend:
    """Scored points of one stream about to be stored: what transaction hooks (the webhook outbox) see."""

    stream_id: str
    model_name: str | None
    model_version: int | None
    points: list[ScoredPoint]
    events: list[AlarmEvent]
    alerts: bool  # False: store the alarm changes, announce none (the stream's option or the request's)
    row: StreamRow = field(repr=False)  # as the points were scored against (its revision is checked)
    stream: StreamState = field(repr=False)
    state: str | None = field(repr=False)  # the snapshot to store with these points; None: none due
    snapshot_position: int = field(repr=False)  # position of the stream's stored snapshot after this append


# Called inside the transaction that stores a stream's points and alarm changes (the outbox writes here).
AlarmSink = Callable[[Session, StagedAppend], None]
# Called once inside a multi-stream append's transaction, after every stream is written.
TransactionHook = Callable[[Session, list[StagedAppend]], None]
# Awaited after an append's transaction committed, the streams' locks still held (so in each stream's order).
AfterStore = Callable[[list[StagedAppend]], Awaitable[None]]


@dataclass(frozen=True)
class _Loaded:
    row: StreamRow
    open_episode: Episode | None


class StreamModelGoneError(ConflictError):
    title = "Stream's model version is gone"
    slug = "stream-model-version-gone"


class RevisionMovedError(Exception):
    """The stream row changed (another process wrote it) since its state was scored: rebuild and score again."""


@dataclass(frozen=True)
class _Written:
    """One stream as stored by an append: the row (detached) and what the answer shows."""

    row: StreamRow
    info: StreamInfo


class StreamService:
    def __init__(
        self,
        database: Database,
        pool: ModelPool,
        alarm_sink: AlarmSink,
        snapshot_points: int = DEFAULT_STREAM_SNAPSHOT_POINTS,
    ) -> None:
        """`alarm_sink` runs inside each append's transaction (the webhook outbox records its events there);
        a stream's scoring state is stored as a snapshot every `snapshot_points` readings (see app.streams.hot)."""
        if snapshot_points < 1:
            raise ValueError(f"snapshot_points must be at least 1; got {snapshot_points}")
        self.database = database
        self.pool = pool
        self.snapshot_points = snapshot_points
        self._locks = LockRegistry()  # one lock per stream id, only while held or awaited
        self._states: OrderedDict[str, HotStream] = OrderedDict()  # id -> state as of its row's revision
        self.alarm_sink = alarm_sink
        self.after_store: AfterStore | None = None  # told of every stored append (interval calibration)
        self._group: GroupWriter[StagedAppend, _Written] = GroupWriter(
            lambda items: self._persist(list(items), None)
        )

    @property
    def active_locks(self) -> int:
        """Stream ids whose lock is held or awaited right now: 0 when idle (locks do not outlive their use)."""
        return len(self._locks)

    # ---------------------------------------------------------------- configuration
    async def upsert(
        self,
        stream_id: str,
        model: str | None,
        alias: str | None = None,
        version: int | None = None,
        sensitivity: float = DEFAULT_SENSITIVITY,
        learning_points: int | None = None,
        alerts: bool = True,
    ) -> tuple[StreamInfo, bool]:
        """Create or reconfigure a stream; returns (info, created). A `model` must resolve now; None creates a
        self-learning stream. See the module docstring for which changes restart the detector."""
        check_stream_id(stream_id)
        if version is not None and alias is not None:
            raise InvalidInputError("pass either version or alias, not both", fields={"field": "version"})
        if model is None and (alias is not None or version is not None):
            field_name = "alias" if alias is not None else "version"
            raise InvalidInputError(
                f"{field_name} selects a version of a model; pass model too, or neither for a self-learning "
                "stream",
                fields={"field": field_name},
            )
        config = StreamConfig(model, alias, version, _sensitivity(sensitivity), learning_points, alerts)
        _detector_config(learning_points)  # 422 naming learning_points when out of range
        if model is not None:
            await self.pool.get(model, version=version, alias=alias)  # 404 when it does not resolve
        async with self._locks.hold(stream_id):
            for _ in range(MAX_WRITE_ATTEMPTS):
                current = self._states.pop(stream_id, None) or await self._restore_if_exists(stream_id)
                try:
                    created, hot = await run_blocking(self._write_config, stream_id, config, current)
                except RevisionMovedError:
                    continue
                self._remember(stream_id, hot)
                return await self._get_locked(stream_id), created
            raise _contended(f"stream {stream_id!r}")

    def _write_config(
        self, stream_id: str, config: StreamConfig, current: HotStream | None
    ) -> tuple[bool, HotStream]:
        """Store the configuration; a change of what scores (binding, sensitivity) snapshots the state as of
        `point_count` in the same transaction, so no replay crosses it. Returns (created, the new hot state)."""
        with self.database.session() as session:
            _take_write_lock(session)
            row = session.get(StreamRow, stream_id, with_for_update=True)
            created = row is None
            if row is None:
                row = StreamRow(id=stream_id, point_count=0, revision=0)
                session.add(row)
            elif current is None or row.revision != current.row.revision:
                raise RevisionMovedError(stream_id)
            stream: StreamState | None = None
            snapshot_position = row.point_count
            if current is not None and row.state is not None:
                stream, snapshot_position = current.stream, current.snapshot_position
                if _binding(row) != config.binding:
                    stream = _reset(current.stream, config)
                    row.state_model_version = None
                stream.detector.set_sensitivity(config.sensitivity)
                if stream is not current.stream or row.sensitivity != config.sensitivity:
                    row.state = json.dumps(stream.to_state(), allow_nan=False)
                    row.state_position = snapshot_position = row.point_count
            row.model_name, row.alias, row.pinned_version = config.model, config.alias, config.version
            row.sensitivity, row.learning_points, row.alerts = (
                config.sensitivity,
                config.learning_points,
                config.alerts,
            )
            row.updated_at = utc_now()
            row.revision = (row.revision or 0) + 1
            if stream is None:  # no stored state: a fresh detector of the (new) configuration, stored as the
                stream = _state_of(row, None)  # first snapshot so every replica replays from the same start
                row.state = json.dumps(stream.to_state(), allow_nan=False)
                row.state_position = snapshot_position = row.point_count
            session.flush()
            session.expire(row, ["state"])  # the cached row never holds the snapshot text
            session.expunge(row)
            return created, HotStream(row, stream, snapshot_position)

    async def get(self, stream_id: str) -> StreamInfo:
        async with self._locks.hold(stream_id):
            return await self._get_locked(stream_id)

    async def _get_locked(self, stream_id: str) -> StreamInfo:
        loaded = await run_blocking(self._load, stream_id)
        hot = self._states.get(stream_id)
        if hot is None or hot.row.revision != loaded.row.revision:
            hot = await self._restore(stream_id)
            self._remember(stream_id, hot)
        return _info(loaded.row, loaded.open_episode, hot.stream.status())

    async def delete(self, stream_id: str) -> None:
        async with self._locks.hold(stream_id):
            self._states.pop(stream_id, None)
            await run_blocking(self._delete, stream_id)

    def _delete(self, stream_id: str) -> None:
        with self.database.session() as session:
            if session.get(StreamRow, stream_id) is None:
                raise NotFoundError(f"stream {stream_id!r} does not exist")
            session.execute(delete(StreamPointRow).where(StreamPointRow.stream_id == stream_id))
            session.execute(delete(StreamEpisodeRow).where(StreamEpisodeRow.stream_id == stream_id))
            session.execute(delete(StreamRow).where(StreamRow.id == stream_id))

    async def anomalies(
        self,
        stream_id: str,
        since: datetime | None = None,
        after: datetime | None = None,
        limit: int | None = None,
    ) -> list[Episode]:
        """Episodes still open or resolved at/after `since` (all when None), oldest first (by `opened_at`, unique
        per stream): those opened after `after` (a page's last one; all when None), at most `limit`."""
        return await run_blocking(self._episodes, stream_id, since, after, limit)

    def _episodes(
        self, stream_id: str, since: datetime | None, after: datetime | None, limit: int | None
    ) -> list[Episode]:
        with self.database.session() as session:
            if session.get(StreamRow, stream_id) is None:
                raise NotFoundError(f"stream {stream_id!r} does not exist")
            query = select(StreamEpisodeRow).where(StreamEpisodeRow.stream_id == stream_id)
            if since is not None:
                query = query.where(
                    or_(StreamEpisodeRow.resolved_at.is_(None), StreamEpisodeRow.resolved_at >= since)
                )
            if after is not None:
                query = query.where(StreamEpisodeRow.opened_at > after)
            rows = session.scalars(query.order_by(StreamEpisodeRow.opened_at).limit(limit)).all()
            return [_stored_episode(row) for row in rows]

    # ---------------------------------------------------------------- overviews (read-only)
    async def summaries(self, after: str | None = None, limit: int | None = None) -> list[StreamSummary]:
        """Streams with their point count, last timestamp and alarm counts, ordered by id: those after the id
        `after` (all when None), at most `limit` (all when None)."""
        return await run_blocking(stream_summaries, self.database, after, limit)

    async def latest_points(self, stream_id: str, limit: int) -> list[ScoredPoint]:
        """The newest `limit` stored points of a stream with their forecast band and score, oldest first."""
        points = await run_blocking(latest_points, self.database, stream_id, limit)
        if points is None:
            raise NotFoundError(f"stream {stream_id!r} does not exist")
        return points

    # ---------------------------------------------------------------- points
    async def append(self, stream_id: str, points: Sequence[Reading], alerts: bool = True) -> AppendResult:
        """Score and durably store `points` (timestamp naive UTC, value or None) in order; `alerts=False`
        announces none of the alarms they cause (backfill)."""
        check_points(points)
        async with self._locks.hold(stream_id):
            [(staged, written)] = await self._store([(stream_id, points)], alerts, None, named=False)
        return AppendResult(
            written.info, staged.model_name, staged.model_version, staged.points, staged.events
        )

    async def append_many(
        self,
        batches: Sequence[tuple[str, Sequence[Reading]]],
        in_transaction: TransactionHook | None = None,
        alerts: bool = True,
    ) -> list[AppendResult]:
        """Append to several streams in ONE transaction: every point of every stream is stored, or none.

        Each stream's points are checked and scored like `append`; `in_transaction` runs inside the
        transaction after all streams are written (e.g. to record an idempotency key with the response)."""
        ids = [stream_id for stream_id, _ in batches]
        if len(set(ids)) != len(ids):
            raise InvalidInputError("each stream may appear once per batch", fields={"field": "points"})
        for stream_id, points in batches:
            with _naming(stream_id):
                check_points(points)
        async with self._locks.hold_all(ids):  # sorted: one global order, no deadlock between batches
            stored = await self._store(batches, alerts, in_transaction, named=True)
        return [
            AppendResult(written.info, item.model_name, item.model_version, item.points, item.events)
            for item, written in stored
        ]

    async def _store(
        self,
        batches: Sequence[tuple[str, Sequence[Reading]]],
        alerts: bool,
        in_transaction: TransactionHook | None,
        named: bool,
    ) -> list[tuple[StagedAppend, _Written]]:
        """Score and store (locks held). When another process wrote one of the streams since its state was
        scored, rebuild the state from the database and score again; from the second retry on, lock the rows
        first (`_store_locked`), so a replica that keeps losing the race still gets through. 409 only after
        MAX_WRITE_ATTEMPTS."""
        for attempt in range(MAX_WRITE_ATTEMPTS):
            try:
                if attempt < 2:
                    staged = []
                    for stream_id, points in batches:
                        with _naming(stream_id if named else None):
                            staged.append(await self._stage(stream_id, points, alerts))
                    written = await self._write_staged(staged, in_transaction)
                else:
                    staged, written = await self._store_locked(batches, alerts, in_transaction, named)
            except RevisionMovedError:
                await asyncio.sleep(random.uniform(0, 0.002 * (attempt + 1)))  # let the other writer finish
                continue
            for item, stored in zip(staged, written, strict=True):
                self._remember(item.stream_id, HotStream(stored.row, item.stream, item.snapshot_position))
            if self.after_store is not None:  # stored already: the hook's failures are its own
                await self.after_store(staged)
            return list(zip(staged, written, strict=True))
        raise _contended(f"stream {batches[0][0]!r}" if len(batches) == 1 else "a stream of this batch")

    async def _write_staged(
        self, staged: list[StagedAppend], in_transaction: TransactionHook | None
    ) -> list[_Written]:
        """Store scored points: one stream's append goes through the group commit (stored in one transaction
        with the other streams' appends pending at the same time); a multi-stream batch is its own transaction."""
        if len(staged) == 1 and in_transaction is None:
            return [await self._group.submit(staged[0])]
        return await run_blocking(self._persist, staged, in_transaction)

    async def _stage(self, stream_id: str, points: Sequence[Reading], alerts: bool) -> StagedAppend:
        """Score `points` without storing them, on the pool's single inference thread (every stream: one
        CPU-bound thread at a time, so the event loop keeps answering while many streams append). The hot state
        leaves the cache while it is scored: it returns only once its points are stored."""
        hot = self._states.pop(stream_id, None) or await self._restore(stream_id)
        serving = await self._serving(hot.row)
        return await self.pool.infer(self._staged, stream_id, hot, serving, list(points), alerts)

    async def _store_locked(
        self,
        batches: Sequence[tuple[str, Sequence[Reading]]],
        alerts: bool,
        in_transaction: TransactionHook | None,
        named: bool,
    ) -> tuple[list[StagedAppend], list[_Written]]:
        """Lock the stream rows, then rebuild, score and store in that one transaction (one worker thread; the
        scoring still runs on the inference thread). The models are resolved first, for the rows as read just
        before; RevisionMovedError when the configuration changed in between."""
        resolved = []
        for stream_id, _ in batches:
            self._states.pop(stream_id, None)
            with _naming(stream_id if named else None):
                row = (await run_blocking(self._load, stream_id)).row
                resolved.append((row, await self._serving(row), await self._replay_serving(row)))
        return await run_blocking(self._locked_write, batches, resolved, alerts, in_transaction)

    def _locked_write(
        self,
        batches: Sequence[tuple[str, Sequence[Reading]]],
        resolved: list[tuple[StreamRow, ServingModel | None, ServingModel | None]],
        alerts: bool,
        in_transaction: TransactionHook | None,
    ) -> tuple[list[StagedAppend], list[_Written]]:
        with self.database.session() as session:
            _take_write_lock(session)
            for stream_id in sorted(stream_id for stream_id, _ in batches):
                session.get(StreamRow, stream_id, with_for_update=True, options=[defer(StreamRow.state)])
            staged = []
            for (stream_id, points), (before, serving, replaying) in zip(batches, resolved, strict=True):
                stored = read_stored(self.database, stream_id)  # nobody else can write it now
                if _config(stored.row) != _config(before):
                    raise RevisionMovedError(stream_id)
                hot = self.pool.executor.submit(_rebuilt, stored, replaying).result()
                job = self.pool.executor.submit(self._staged, stream_id, hot, serving, list(points), alerts)
                staged.append(job.result())
            written = self._write_all(session, staged, in_transaction)
            return staged, written

    def _staged(
        self,
        stream_id: str,
        hot: HotStream,
        serving: ServingModel | None,
        points: list[Reading],
        alerts: bool,
    ) -> StagedAppend:
        """`points` scored on `hot` (on the inference thread), ready to be stored."""
        scored, events, state = self._score(hot, serving, points)
        stream = hot.stream
        return StagedAppend(
            stream_id,
            stream.model,
            stream.model_version,
            scored,
            events,
            alerts and hot.row.alerts,
            hot.row,
            stream,
            state,
            hot.snapshot_position if state is None else stream.position,
        )

    async def _serving(self, row: StreamRow) -> ServingModel | None:
        """The model version that serves the stream now (None: self-learning); a 409 when the stream is pinned
        to a version that was deleted (or its model has none left): the stream must be re-pointed first."""
        if row.model_name is None:
            return None
        try:
            served = await self.pool.get(row.model_name, version=row.pinned_version, alias=row.alias)
        except VersionNotFoundError as error:
            raise StreamModelGoneError(
                f"stream {row.id!r} cannot score: {error.detail} (deleted); point the stream at another version "
                f"or alias with PUT /v1/streams/{row.id} (its stored points are kept)",
                fields={"stream_id": row.id, "model": row.model_name, "version": row.pinned_version},
            ) from error
        return ServingModel(served.name, served.version, served.loaded.forecaster)

    async def _replay_serving(self, row: StreamRow) -> ServingModel | None:
        """The model version the stream's snapshot is bound to (`state_model_version`: a snapshot is taken at
        every version change, so the readings after it were scored with it); None when not bound."""
        if row.model_name is None or row.state_model_version is None:
            return None
        served = await self.pool.get(row.model_name, version=row.state_model_version)
        return ServingModel(served.name, served.version, served.loaded.forecaster)

    def _score(
        self, hot: HotStream, serving: ServingModel | None, points: list[Reading]
    ) -> tuple[list[ScoredPoint], list[AlarmEvent], str | None]:
        """Score `points` (on the inference thread); also the snapshot JSON when one is due, else None."""
        stream = hot.stream
        stream.detector.set_sensitivity(hot.row.sensitivity)
        bound = (stream.model, stream.model_version)
        stream.bind(serving)
        scored: list[ScoredPoint] = []
        events: list[AlarmEvent] = []
        for timestamp, value in points:
            point, point_events = stream.append(timestamp, value)
            scored.append(point)
            events.extend(point_events)
        rebound = (stream.model, stream.model_version) != bound  # a replay must not cross a version change
        if rebound or stream.position - hot.snapshot_position >= self.snapshot_points:
            return scored, events, json.dumps(stream.to_state(), allow_nan=False)
        return scored, events, None

    async def _restore(self, stream_id: str) -> HotStream:
        """The stream's state rebuilt from its snapshot and the readings stored since (see app.streams.hot).

        When the model version the snapshot is bound to was deleted, the readings after it cannot be replayed:
        the stream gets a fresh detector at its position (the open alarm carried over), as after a change of
        its model; the next append that scores binds it to the version serving then."""
        stored = await run_blocking(read_stored, self.database, stream_id)
        try:
            serving = await self._replay_serving(stored.row) if stored.readings else None
        except VersionNotFoundError:
            return HotStream(stored.row, _orphaned(stored), stored.snapshot_position)
        return await self.pool.infer(_rebuilt, stored, serving)

    async def _restore_if_exists(self, stream_id: str) -> HotStream | None:
        try:
            return await self._restore(stream_id)
        except NotFoundError:
            return None

    def _persist(self, staged: list[StagedAppend], in_transaction: TransactionHook | None) -> list[_Written]:
        with self.database.session() as session:
            _take_write_lock(session)
            return self._write_all(session, staged, in_transaction)

    def _write_all(
        self, session: Session, staged: list[StagedAppend], in_transaction: TransactionHook | None
    ) -> list[_Written]:
        """Write every stream (rows locked in id order: one global order, so replicas do not deadlock)."""
        order = sorted(range(len(staged)), key=lambda index: staged[index].stream_id)
        by_index = {index: self._write(session, staged[index]) for index in order}
        written = [by_index[index] for index in range(len(staged))]
        if in_transaction is not None:
            in_transaction(session, staged)
        return written

    def _write(self, session: Session, staged: StagedAppend) -> _Written:
        """Store one stream's points (and its snapshot when due): the row is advanced by ONE conditional UPDATE
        (`revision` as scored against), which also locks it; RevisionMovedError when another writer moved it."""
        loaded, stream, scored = staged.row, staged.stream, staged.points
        newest = max(point.timestamp for point in scored if point.timestamp is not None)
        changes: dict[str, Any] = {
            "state_model_version": stream.model_version,
            "point_count": stream.position,
            "last_timestamp": newest if loaded.last_timestamp is None else max(loaded.last_timestamp, newest),
            "updated_at": utc_now(),
            "revision": loaded.revision + 1,
        }
        if staged.state is not None:
            changes.update(state=staged.state, state_position=stream.position)
        connection = session.connection()  # Core statements: the ORM's overhead was most of their cost
        moved = connection.execute(
            _ADVANCE_ROW_WITH_SNAPSHOT if staged.state is not None else _ADVANCE_ROW,
            {**changes, "expected_id": loaded.id, "expected_revision": loaded.revision},
        )
        if moved.rowcount != 1:
            if session.get(StreamRow, loaded.id, options=[defer(StreamRow.state)]) is None:
                raise ConflictError(
                    f"stream {loaded.id!r} was deleted while these points were scored; nothing was stored"
                )
            raise RevisionMovedError(loaded.id)
        connection.execute(  # one Core executemany: far cheaper than the ORM for a batch of points
            _INSERT_POINTS, [_point_values(loaded.id, point, staged.model_version) for point in scored]
        )
        for event in staged.events:
            _apply_event(session, loaded.id, event)
        open_row = _refresh_open_episode(session, loaded.id, stream.policy.open_episode)
        self.alarm_sink(session, staged)
        episode = None if open_row is None else _stored_episode(open_row)
        session.flush()
        changes.pop("state", None)  # the cached row never holds the snapshot text
        row = _advanced(loaded, changes)
        return _Written(row, _info(row, episode, stream.status()))

    # ---------------------------------------------------------------- helpers
    def _load(self, stream_id: str) -> _Loaded:
        with self.database.session() as session:
            row = session.get(StreamRow, stream_id, options=[defer(StreamRow.state)])
            if row is None:
                raise not_found(stream_id)
            episode = session.scalars(
                select(StreamEpisodeRow).where(
                    StreamEpisodeRow.stream_id == stream_id, StreamEpisodeRow.resolved_at.is_(None)
                )
            ).first()
            session.expunge(row)
            return _Loaded(row, None if episode is None else _stored_episode(episode))

    def _remember(self, stream_id: str, hot: HotStream) -> None:
        self._states[stream_id] = hot
        self._states.move_to_end(stream_id)
        while len(self._states) > MAX_CACHED_STATES:
            self._states.popitem(last=False)


def _take_write_lock(session: Session) -> None:
    """Begin a write transaction: on SQLite take the write lock first (BEGIN IMMEDIATE, waiting up to the busy
    timeout), so a read followed by a write never fails on a snapshot another writer made stale. On other
    databases the stream row is locked by SELECT ... FOR UPDATE instead."""
    if session.get_bind().dialect.name == "sqlite":
        session.execute(text("BEGIN IMMEDIATE"))


def _contended(what: str) -> ConflictError:
    return ConflictError(
        f"{what} kept changing while these points were scored (written by other processes); "
        "nothing was stored, send the points again"
    )


@contextmanager
def _naming(stream_id: str | None) -> Iterator[None]:
    """Prefix a refusal with the stream it is about (streams of a multi-stream batch); None: unchanged."""
    try:
        yield
    except TswatchError as error:
        if stream_id is None:
            raise
        raise type(error)(f"stream {stream_id!r}: {error.detail}", fields=error.fields) from error


# -------------------------------------------------------------------- validation
def check_stream_id(stream_id: str) -> None:
    if not stream_id or len(stream_id) > MAX_STREAM_ID or not stream_id.isprintable():
        raise InvalidInputError(
            f"stream id must be 1-{MAX_STREAM_ID} printable characters; got {stream_id[:40]!r}",
            fields={"field": "stream_id"},
        )


def check_points(points: Sequence[Reading]) -> None:
    """Refuse only malformed input: no points, or a value that is neither a finite number nor null.

    Duplicate, late and out-of-order timestamps are input (see `app.anomaly.sampling`), not refused."""
    if not points:
        raise InvalidInputError("send at least one point", fields={"field": "points"})
    for index, (_, value) in enumerate(points):
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise InvalidInputError(
                f"points.{index}.value must be a finite number or null",
                fields={"field": f"points.{index}.value"},
            )


def _sensitivity(value: float) -> float:
    try:
        return validate_sensitivity(value)
    except ValueError as error:
        raise InvalidInputError(str(error), fields={"field": "sensitivity"}) from error


def _detector_config(learning_points: int | None) -> DetectorConfig:
    """The detector settings of a stream (`learning_points` None: the default learning period)."""
    try:
        return DetectorConfig(learning_points=learning_points or DEFAULT_LEARNING_POINTS)
    except ValueError as error:
        raise InvalidInputError(str(error), fields={"field": "learning_points"}) from error


# -------------------------------------------------------------------- configuration and state
@dataclass(frozen=True)
class StreamConfig:
    """What PUT /v1/streams/{id} sets."""

    model: str | None
    alias: str | None
    version: int | None
    sensitivity: float
    learning_points: int | None
    alerts: bool

    @property
    def binding(self) -> tuple[str | None, str | None, int | None, int | None]:
        """The settings whose change restarts the detector."""
        return (self.model, self.alias, self.version, self.learning_points)


def _binding(row: StreamRow) -> tuple[str | None, str | None, int | None, int | None]:
    return (row.model_name, row.alias, row.pinned_version, row.learning_points)


def _state_of(row: StreamRow, state: str | None) -> StreamState:
    """The stream state stored as `state` (upgraded from an older format when needed), or a fresh one at the
    row's position when there is none."""
    config = _detector_config(row.learning_points)
    if state is None:
        return StreamState.fresh(config, row.sensitivity, position=row.point_count)
    return StreamState.from_state(json.loads(state), config, row.sensitivity)


def _config(row: StreamRow) -> tuple[Any, ...]:
    """What decides how a stream scores: binding, sensitivity and the model version its state is bound to."""
    return (*_binding(row), row.sensitivity, row.state_model_version)


def _rebuilt(stored: StoredStream, serving: ServingModel | None) -> HotStream:
    """The stream as of its row: the snapshot with the readings stored after it replayed (inference thread)."""
    stream = _snapshot_state(stored)
    replay(stream, serving, stored.readings)
    return HotStream(stored.row, stream, stored.snapshot_position)


def _orphaned(stored: StoredStream) -> StreamState:
    """A fresh detector at the stream's position, keeping the snapshot's alarm policy (its open alarm)."""
    snapshot = _snapshot_state(stored)
    config = _detector_config(stored.row.learning_points)
    return StreamState.fresh(config, stored.row.sensitivity, stored.row.point_count, snapshot.policy)


def _snapshot_state(stored: StoredStream) -> StreamState:
    """The state of a stream's snapshot (before the readings stored after it are replayed)."""
    if stored.state is None:
        config = _detector_config(stored.row.learning_points)
        return StreamState.fresh(config, stored.row.sensitivity, position=stored.snapshot_position)
    return _state_of(stored.row, stored.state)


def _reset(stream: StreamState, config: StreamConfig) -> StreamState:
    """A fresh detector for the new configuration; the position continues and an open alarm carries over."""
    return StreamState.fresh(
        _detector_config(config.learning_points), config.sensitivity, stream.position, stream.policy
    )


# -------------------------------------------------------------------- rows
_ADVANCED_COLUMNS = ("state_model_version", "point_count", "last_timestamp", "updated_at", "revision")
# An append's row update, built once: only when the row still has the revision the points were scored against.
_ADVANCE_ROW = (
    update(StreamRow)
    .where(StreamRow.id == bindparam("expected_id"), StreamRow.revision == bindparam("expected_revision"))
    .values({name: bindparam(name) for name in _ADVANCED_COLUMNS})
)
_ADVANCE_ROW_WITH_SNAPSHOT = _ADVANCE_ROW.values(
    state=bindparam("state"), state_position=bindparam("state_position")
)
_INSERT_POINTS = insert(StreamPointRow)


def _advanced(row: StreamRow, changes: dict[str, Any]) -> StreamRow:
    """A new detached stream row: `row`'s columns (its snapshot text left out) with `changes` applied."""
    columns = {
        attribute.key: getattr(row, attribute.key)
        for attribute in inspect(StreamRow).column_attrs
        if attribute.key != "state"
    }
    return StreamRow(**{**columns, **changes})


def _point_values(stream_id: str, point: ScoredPoint, model_version: int | None) -> dict[str, Any]:
    """The `stream_points` row of a scored point."""
    return {
        "stream_id": stream_id,
        "timestamp": point.timestamp,
        "position": point.index,
        "value": point.value,
        "expected": point.expected,
        "lower": point.lower,
        "upper": point.upper,
        "score": point.score,
        "is_anomaly": point.is_anomaly,
        "direction": point.direction,
        "model_version": model_version,
        "sampling": point.sampling,
    }


def _apply_event(session: Session, stream_id: str, event: AlarmEvent) -> None:
    if event.kind == "opened":
        session.add(StreamEpisodeRow(stream_id=stream_id, **_episode_fields(event.episode)))
        session.flush()
        return
    _refresh_open_episode(session, stream_id, event.episode)


def _refresh_open_episode(
    session: Session, stream_id: str, episode: Episode | None
) -> StreamEpisodeRow | None:
    """Write `episode`'s current state to its row; the row (None when there is no episode)."""
    if episode is None:
        return None
    row = session.scalars(
        select(StreamEpisodeRow).where(
            StreamEpisodeRow.stream_id == stream_id,
            StreamEpisodeRow.opened_at == from_state_iso(episode.opened_at),
        )
    ).first()
    if row is None:  # opened before this stream had an episode row (should not happen); record it now
        row = StreamEpisodeRow(stream_id=stream_id, **_episode_fields(episode))
        session.add(row)
        return row
    for key, value in _episode_fields(episode).items():
        setattr(row, key, value)
    return row


def _episode_fields(episode: Episode) -> dict[str, Any]:
    """The columns of a stream's episode (timestamps are state ISO strings, stored as naive UTC)."""
    peak = episode.peak
    return {
        "started_at": from_state_iso(episode.started_at),
        "opened_at": from_state_iso(episode.opened_at),
        "last_flagged_at": from_state_iso(episode.last_flagged_at),
        "resolved_at": None if episode.resolved_at is None else from_state_iso(episode.resolved_at),
        "peak_timestamp": from_state_iso(peak.timestamp),
        "peak_score": peak.score,
        "peak_value": peak.value,
        "peak_expected": episode.peak_expected,
        "direction": peak.direction,
        "n_points": episode.n_points,
        "n_flagged": episode.n_flagged,
    }


def _stored_episode(row: StreamEpisodeRow) -> Episode:
    """A stored episode as the `Episode` its stream's tracker made (state ISO timestamps).

    The row keeps no forecast band for the peak, so `peak.lower` / `peak.upper` are NaN here."""
    peak = PointRecord(
        timestamp=to_state_iso(row.peak_timestamp),
        score=_stored_float(row.peak_score),
        direction=row.direction,
        value=_stored_float(row.peak_value),
        expected=_stored_float(row.peak_expected),
        lower=math.nan,
        upper=math.nan,
    )
    return Episode(
        started_at=to_state_iso(row.started_at),
        opened_at=to_state_iso(row.opened_at),
        last_flagged_at=to_state_iso(row.last_flagged_at),
        peak=peak,
        n_points=row.n_points,
        n_flagged=row.n_flagged,
        resolved_at=None if row.resolved_at is None else to_state_iso(row.resolved_at),
    )


def _stored_float(value: float | None) -> float:
    """A nullable float column as the episode's number (NULL = NaN, "unknown")."""
    return math.nan if value is None else value


def _info(row: StreamRow, open_episode: Episode | None, detector: DetectorStatus) -> StreamInfo:
    return StreamInfo(
        id=row.id,
        model=row.model_name,
        alias=row.alias,
        version=row.pinned_version,
        sensitivity=row.sensitivity,
        alerts=row.alerts,
        created_at=row.created_at,
        updated_at=row.updated_at,
        last_timestamp=row.last_timestamp,
        point_count=row.point_count,
        state_model_version=row.state_model_version,
        open_episode=open_episode,
        detector=detector,
    )
