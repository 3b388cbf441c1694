"""Streams kept by the server: configuration, incremental scoring and durable state.

`append` checks the batch (only malformed input is refused: duplicate, late and missing readings are input,
answered with their `sampling` and `score: null`), scores it on the inference thread (`StreamState`: the one
detector, plus a registered model's forecasts for a model-bound stream), and writes the points, the new stream state and the episode changes in ONE database transaction. A point is
acknowledged only after that commit, so a crash (even kill -9) loses no acknowledged point, and a restart resumes
from the stored state with identical scores: the detector refits inline at readings fixed by its schedule, so
scores never depend on timing. A per-stream asyncio lock serialises appends within the process; a `revision`
check in the transaction refuses (409) a write that raced another process or a configuration change.

Streams without a `model` learn their own forecaster (the detector's learning period, `learning_points`). A
model-bound stream follows `alias` (or the default version) of its model unless a version is pinned; when the
version that answers changes, the next append rebuilds the forecasts on the new version (`StreamState.bind`).
Changing a stream's model, alias, version or learning_points restarts its detector (it learns again from the
next readings; positions keep counting and an open alarm carries over); changing sensitivity or alerts keeps it.
With `alerts` false (the stream's option, or `alerts=False` for one append) alarms are stored as usual but the
alarm sink is told not to announce them (no webhooks).
"""

from __future__ import annotations

import json
import math
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session

from app.anomaly import AlarmEvent, AlarmPolicy, DetectorConfig, Episode
from app.anomaly.detector import DEFAULT_LEARNING_POINTS
from app.anomaly.episodes import PointRecord
from app.anomaly.points import ScoredPoint
from app.anomaly.sensitivity import DEFAULT_SENSITIVITY, validate_sensitivity
from app.concurrency import run_blocking
from app.errors import ConflictError, InvalidInputError, NotFoundError, TswatchError
from app.serving.pool import ModelPool
from app.storage.database import Database
from app.storage.tables.streams import StreamEpisodeRow, StreamPointRow, StreamRow
from app.streams.locks import LockRegistry
from app.streams.queries import StreamSummary, latest_points, stream_summaries
from app.streams.scoring import DetectorStatus, Reading, ServingModel, StreamState
from app.timestamps import from_state_iso, to_state_iso, utc_now

MAX_STREAM_ID = 200
MAX_CACHED_STATES = 10_000


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
    row: StreamRow = field(repr=False)
    stream: StreamState = field(repr=False)
    state: str = field(repr=False)


# Called inside the transaction that stores a stream's points and alarm changes (the outbox writes here).
AlarmSink = Callable[[Session, StagedAppend], None]
# Called once inside a multi-stream append's transaction, after every stream is written.
TransactionHook = Callable[[Session, list[StagedAppend]], None]


@dataclass(frozen=True)
class _Loaded:
    row: StreamRow
    open_episode: Episode | None


class StreamService:
    def __init__(self, database: Database, pool: ModelPool, alarm_sink: AlarmSink) -> None:
        """`alarm_sink` runs inside each append's transaction (the webhook outbox records its events there)."""
        self.database = database
        self.pool = pool
        self._locks = LockRegistry()  # one lock per stream id, only while held or awaited
        self._states: OrderedDict[str, tuple[int, StreamState]] = OrderedDict()  # id -> (revision, state)
        self.alarm_sink = alarm_sink

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
            self._states.pop(stream_id, None)
            created = await run_blocking(self._write_config, stream_id, config)
            return await self.get(stream_id), created

    def _write_config(self, stream_id: str, config: StreamConfig) -> bool:
        with self.database.session() as session:
            row = session.get(StreamRow, stream_id)
            created = row is None
            if row is None:
                row = StreamRow(id=stream_id, point_count=0, revision=0)
                session.add(row)
            elif row.state is not None and _binding(row) != config.binding:
                row.state = _reset_state(row, config)
                row.state_model_version = None
            row.model_name, row.alias, row.pinned_version = config.model, config.alias, config.version
            row.sensitivity, row.learning_points, row.alerts = (
                config.sensitivity,
                config.learning_points,
                config.alerts,
            )
            row.updated_at = utc_now()
            row.revision = (row.revision or 0) + 1
            return created

    async def get(self, stream_id: str) -> StreamInfo:
        loaded = await run_blocking(self._load, stream_id)
        row = loaded.row
        cached = self._states.get(stream_id)  # never scored while cached: an append takes it out first
        if cached is not None and cached[0] == row.revision:
            status = cached[1].status()
        else:
            status = await run_blocking(_stored_status, row)
        return _info(row, loaded.open_episode, status)

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

    async def anomalies(self, stream_id: str, since: datetime | None = None) -> list[Episode]:
        """Episodes still open or resolved at/after `since` (all when None), oldest first."""
        return await run_blocking(self._episodes, stream_id, since)

    def _episodes(self, stream_id: str, since: datetime | None) -> list[Episode]:
        with self.database.session() as session:
            if session.get(StreamRow, stream_id) is None:
                raise NotFoundError(f"stream {stream_id!r} does not exist")
            query = select(StreamEpisodeRow).where(StreamEpisodeRow.stream_id == stream_id)
            if since is not None:
                query = query.where(
                    or_(StreamEpisodeRow.resolved_at.is_(None), StreamEpisodeRow.resolved_at >= since)
                )
            rows = session.scalars(query.order_by(StreamEpisodeRow.opened_at)).all()
            return [_stored_episode(row) for row in rows]

    # ---------------------------------------------------------------- overviews (read-only)
    async def summaries(self) -> list[StreamSummary]:
        """Every stream with its point count, last timestamp and alarm counts, ordered by id."""
        return await run_blocking(stream_summaries, self.database)

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
        async with self._locks.hold(stream_id):
            row = await self._checked_row(stream_id, points)
            staged = await self._stage(stream_id, points, row, alerts)
            revision, stream = await run_blocking(self._persist, staged)
            self._remember(stream_id, revision, staged.stream)
        return AppendResult(stream, staged.model_name, staged.model_version, staged.points, staged.events)

    def _score(
        self,
        row: StreamRow,
        serving: ServingModel | None,
        cached: tuple[int, StreamState] | None,
        points: list[Reading],
    ) -> tuple[list[ScoredPoint], list[AlarmEvent], StreamState, str]:
        """Score `points` (on a worker thread); also the new state as JSON text."""
        stream = cached[1] if cached is not None and cached[0] == row.revision else _stored_state(row)
        stream.detector.set_sensitivity(row.sensitivity)
        stream.bind(serving)
        scored: list[ScoredPoint] = []
        events: list[AlarmEvent] = []
        for timestamp, value in points:
            point, point_events = stream.append(timestamp, value)
            scored.append(point)
            events.extend(point_events)
        return scored, events, stream, json.dumps(stream.to_state(), allow_nan=False)

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
        async with self._locks.hold_all(ids):  # sorted: one global order, no deadlock between batches
            staged = [await self._stage_named(stream_id, points, alerts) for stream_id, points in batches]
            written = await run_blocking(self._persist_many, staged, in_transaction)
            for item, (revision, _) in zip(staged, written, strict=True):
                self._remember(item.stream_id, revision, item.stream)
        results = []
        for item, (_, info) in zip(staged, written, strict=True):
            results.append(AppendResult(info, item.model_name, item.model_version, item.points, item.events))
        return results

    async def _stage_named(self, stream_id: str, points: Sequence[Reading], alerts: bool) -> StagedAppend:
        """`_stage` for one stream of a batch: a refusal of the stream or its points names the stream."""
        try:
            row = await self._checked_row(stream_id, points)
        except TswatchError as error:
            raise type(error)(f"stream {stream_id!r}: {error.detail}", fields=error.fields) from error
        return await self._stage(stream_id, points, row, alerts)

    async def _checked_row(self, stream_id: str, points: Sequence[Reading]) -> StreamRow:
        check_points(points)
        return (await run_blocking(self._load, stream_id)).row

    async def _stage(
        self, stream_id: str, points: Sequence[Reading], row: StreamRow, alerts: bool
    ) -> StagedAppend:
        """Score `points` without storing them, on the pool's single inference thread (every stream: one
        CPU-bound thread at a time, so the event loop keeps answering while many streams append)."""
        cached = self._states.pop(stream_id, None)
        serving = None
        if row.model_name is not None:
            served = await self.pool.get(row.model_name, version=row.pinned_version, alias=row.alias)
            serving = ServingModel(served.name, served.version, served.loaded.forecaster)
        scored, events, stream, state = await self.pool.infer(self._score, row, serving, cached, list(points))
        return StagedAppend(
            stream_id,
            stream.model,
            stream.model_version,
            scored,
            events,
            alerts and row.alerts,
            row,
            stream,
            state,
        )

    def _persist_many(
        self, staged: list[StagedAppend], in_transaction: TransactionHook | None
    ) -> list[tuple[int, StreamInfo]]:
        with self.database.session() as session:
            written = [self._write(session, item) for item in staged]
            if in_transaction is not None:
                in_transaction(session, staged)
            return written

    def _persist(self, staged: StagedAppend) -> tuple[int, StreamInfo]:
        with self.database.session() as session:
            return self._write(session, staged)

    def _write(self, session: Session, staged: StagedAppend) -> tuple[int, StreamInfo]:
        """Store one stream's points and state; the new revision and the stream as stored (no reload)."""
        loaded, stream, scored = staged.row, staged.stream, staged.points
        row = session.get(StreamRow, loaded.id)
        if row is None or row.revision != loaded.revision:
            raise ConflictError(
                f"stream {loaded.id!r} changed while these points were scored (deleted, reconfigured or "
                "written by another process); nothing was stored, send the points again"
            )
        session.add_all(_point_row(loaded.id, point, staged.model_version) for point in scored)
        for event in staged.events:
            _apply_event(session, loaded.id, event)
        open_row = _refresh_open_episode(session, loaded.id, stream.policy.open_episode)
        row.state = staged.state
        row.state_model_version = stream.model_version
        row.point_count = stream.position
        newest = max(point.timestamp for point in scored if point.timestamp is not None)
        row.last_timestamp = newest if row.last_timestamp is None else max(row.last_timestamp, newest)
        row.updated_at = utc_now()
        row.revision += 1
        self.alarm_sink(session, staged)
        episode = None if open_row is None else _stored_episode(open_row)
        return row.revision, _info(row, episode, stream.status())

    # ---------------------------------------------------------------- helpers
    def _load(self, stream_id: str) -> _Loaded:
        with self.database.session() as session:
            row = session.get(StreamRow, stream_id)
            if row is None:
                raise NotFoundError(
                    f"stream {stream_id!r} does not exist; create it with PUT /v1/streams/{stream_id}"
                )
            episode = session.scalars(
                select(StreamEpisodeRow).where(
                    StreamEpisodeRow.stream_id == stream_id, StreamEpisodeRow.resolved_at.is_(None)
                )
            ).first()
            session.expunge(row)
            return _Loaded(row, None if episode is None else _stored_episode(episode))

    def _remember(self, stream_id: str, revision: int, stream: StreamState) -> None:
        self._states[stream_id] = (revision, stream)
        while len(self._states) > MAX_CACHED_STATES:
            self._states.popitem(last=False)


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


def _stored_state(row: StreamRow) -> StreamState:
    """The row's stream state (upgraded from an older format when needed), or a fresh one."""
    config = _detector_config(row.learning_points)
    if row.state is None:
        return StreamState.fresh(config, row.sensitivity, position=row.point_count)
    return StreamState.from_state(json.loads(row.state), config, row.sensitivity)


def _stored_status(row: StreamRow) -> DetectorStatus:
    return _stored_state(row).status()


def _reset_state(row: StreamRow, config: StreamConfig) -> str:
    """A fresh detector for the new configuration; the position continues and an open alarm carries over."""
    assert row.state is not None
    policy = AlarmPolicy.from_state(json.loads(row.state)["policy"])
    fresh = StreamState.fresh(
        _detector_config(config.learning_points), config.sensitivity, row.point_count, policy
    )
    return json.dumps(fresh.to_state(), allow_nan=False)


# -------------------------------------------------------------------- rows
def _point_row(stream_id: str, point: ScoredPoint, model_version: int | None) -> StreamPointRow:
    return StreamPointRow(
        stream_id=stream_id,
        timestamp=point.timestamp,
        position=point.index,
        value=point.value,
        expected=point.expected,
        lower=point.lower,
        upper=point.upper,
        score=point.score,
        is_anomaly=point.is_anomaly,
        direction=point.direction,
        model_version=model_version,
        sampling=point.sampling,
    )


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
