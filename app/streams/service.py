"""Streams kept by the server: configuration, incremental scoring and durable state.

`append` validates the whole batch first (nothing changes when any point is refused), scores it on the inference
thread (`pool.infer`), and writes the points, the new scorer state and the episode changes in ONE database
transaction. A point is acknowledged only after that commit, so a crash (even kill -9) loses no acknowledged
point, and a restart resumes from the stored state with identical scores. A per-stream asyncio lock serialises
appends within the process; a `revision` check in the transaction refuses (409) a write that raced another
process or a configuration change.

Model binding: a stream follows `alias` (or the default version) of its model unless a version is pinned. When
the version that answers changes (alias moved, new default), the next append rebuilds the scorer from the stored
recent values on the new version (new anchor and hidden state, calibrator restarted on the new version's
calibration, open alarm carried over); see `StreamScorer.from_state`.
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

from app.anomaly import AlarmEvent, Episode
from app.anomaly.episodes import PointRecord
from app.anomaly.points import ScoredPoint
from app.anomaly.sensitivity import DEFAULT_SENSITIVITY, validate_sensitivity
from app.concurrency import run_blocking
from app.errors import ConflictError, InvalidInputError, NotFoundError, TswatchError
from app.serving.pool import ModelPool, ServedModel
from app.storage.database import Database
from app.storage.tables.streams import StreamEpisodeRow, StreamPointRow, StreamRow
from app.streams.locks import LockRegistry
from app.streams.queries import StreamSummary, latest_points, stream_summaries
from app.streams.scoring import StreamScorer
from app.timestamps import from_state_iso, to_state_iso, utc_now

MAX_STREAM_ID = 200
MAX_CACHED_SCORERS = 10_000


@dataclass(frozen=True)
class StreamInfo:
    id: str
    model: str
    alias: str | None
    version: int | None  # pinned version, None = follow alias / default
    sensitivity: float
    created_at: datetime
    updated_at: datetime
    last_timestamp: datetime | None
    point_count: int
    state_model_version: int | None  # version the scoring state was built with
    open_episode: Episode | None


@dataclass(frozen=True)
class AppendResult:
    stream: StreamInfo
    model_name: str
    model_version: int
    points: list[ScoredPoint]
    events: list[AlarmEvent]


@dataclass(frozen=True)
class StagedAppend:
    """Scored points of one stream about to be stored: what transaction hooks (the webhook outbox) see."""

    stream_id: str
    model_name: str
    model_version: int
    points: list[ScoredPoint]
    events: list[AlarmEvent]
    row: StreamRow = field(repr=False)
    scorer: StreamScorer = field(repr=False)
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
        self._scorers: OrderedDict[str, tuple[int, StreamScorer]] = OrderedDict()  # id -> (revision, scorer)
        self.alarm_sink = alarm_sink

    @property
    def active_locks(self) -> int:
        """Stream ids whose lock is held or awaited right now: 0 when idle (locks do not outlive their use)."""
        return len(self._locks)

    # ---------------------------------------------------------------- configuration
    async def upsert(
        self,
        stream_id: str,
        model: str,
        alias: str | None = None,
        version: int | None = None,
        sensitivity: float = DEFAULT_SENSITIVITY,
    ) -> tuple[StreamInfo, bool]:
        """Create or reconfigure a stream; returns (info, created). The model must resolve now."""
        check_stream_id(stream_id)
        if version is not None and alias is not None:
            raise InvalidInputError("pass either version or alias, not both", fields={"field": "version"})
        value = _sensitivity(sensitivity)
        await self.pool.get(model, version=version, alias=alias)  # 404 when it does not resolve
        async with self._locks.hold(stream_id):
            self._scorers.pop(stream_id, None)
            created = await run_blocking(self._write_config, stream_id, model, alias, version, value)
            return await self.get(stream_id), created

    def _write_config(
        self, stream_id: str, model: str, alias: str | None, version: int | None, sensitivity: float
    ) -> bool:
        with self.database.session() as session:
            row = session.get(StreamRow, stream_id)
            created = row is None
            if row is None:
                row = StreamRow(id=stream_id, point_count=0, revision=0)
                session.add(row)
            row.model_name, row.alias, row.pinned_version, row.sensitivity = (
                model,
                alias,
                version,
                sensitivity,
            )
            row.updated_at = utc_now()
            row.revision = (row.revision or 0) + 1
            return created

    async def get(self, stream_id: str) -> StreamInfo:
        loaded = await run_blocking(self._load, stream_id)
        return _info(loaded.row, loaded.open_episode)

    async def delete(self, stream_id: str) -> None:
        async with self._locks.hold(stream_id):
            self._scorers.pop(stream_id, None)
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
    async def append(self, stream_id: str, points: Sequence[tuple[datetime, float]]) -> AppendResult:
        """Validate, score and durably store `points` (timestamp naive UTC, value) in order."""
        async with self._locks.hold(stream_id):
            row = await self._checked_row(stream_id, points)
            staged = await self._stage(stream_id, points, row)
            revision, stream = await run_blocking(self._persist, staged)
            self._remember(stream_id, revision, staged.scorer)
        return AppendResult(stream, staged.model_name, staged.model_version, staged.points, staged.events)

    def _score(
        self,
        row: StreamRow,
        served: ServedModel,
        cached: tuple[int, StreamScorer] | None,
        points: list[tuple[datetime, float]],
    ) -> tuple[list[ScoredPoint], list[AlarmEvent], StreamScorer]:
        scorer = self._scorer_for(row, served, cached)
        scored: list[ScoredPoint] = []
        events: list[AlarmEvent] = []
        for timestamp, value in points:
            point, point_events = scorer.append(timestamp, value)
            scored.append(point)
            events.extend(point_events)
        return scored, events, scorer

    @staticmethod
    def _scorer_for(
        row: StreamRow, served: ServedModel, cached: tuple[int, StreamScorer] | None
    ) -> StreamScorer:
        calibrator = served.calibration.for_series(row.id)
        forecaster = served.loaded.forecaster
        same_model = cached is not None and (cached[1].model_name, cached[1].model_version) == (
            served.name,
            served.version,
        )
        if cached is not None and cached[0] == row.revision and same_model:
            scorer = cached[1]
        elif row.state:
            scorer = StreamScorer.from_state(
                json.loads(row.state), forecaster, calibrator, served.name, served.version
            )
        else:
            scorer = StreamScorer(forecaster, calibrator, row.sensitivity, served.name, served.version)
        scorer.set_sensitivity(row.sensitivity)
        return scorer

    async def append_many(
        self,
        batches: Sequence[tuple[str, Sequence[tuple[datetime, float]]]],
        in_transaction: TransactionHook | None = None,
    ) -> list[AppendResult]:
        """Append to several streams in ONE transaction: every point of every stream is stored, or none.

        Each stream's points are validated and scored like `append`; `in_transaction` runs inside the
        transaction after all streams are written (e.g. to record an idempotency key with the response)."""
        ids = [stream_id for stream_id, _ in batches]
        if len(set(ids)) != len(ids):
            raise InvalidInputError("each stream may appear once per batch", fields={"field": "points"})
        async with self._locks.hold_all(ids):  # sorted: one global order, no deadlock between batches
            staged = [await self._stage_named(stream_id, points) for stream_id, points in batches]
            written = await run_blocking(self._persist_many, staged, in_transaction)
            for item, (revision, _) in zip(staged, written, strict=True):
                self._remember(item.stream_id, revision, item.scorer)
        results = []
        for item, (_, info) in zip(staged, written, strict=True):
            results.append(AppendResult(info, item.model_name, item.model_version, item.points, item.events))
        return results

    async def _stage_named(self, stream_id: str, points: Sequence[tuple[datetime, float]]) -> StagedAppend:
        """`_stage` for one stream of a batch: a refusal of the stream or its points names the stream."""
        try:
            row = await self._checked_row(stream_id, points)
        except TswatchError as error:
            raise type(error)(f"stream {stream_id!r}: {error.detail}", fields=error.fields) from error
        return await self._stage(stream_id, points, row)

    async def _checked_row(self, stream_id: str, points: Sequence[tuple[datetime, float]]) -> StreamRow:
        row = (await run_blocking(self._load, stream_id)).row
        check_points(points, row.last_timestamp)
        return row

    async def _stage(
        self, stream_id: str, points: Sequence[tuple[datetime, float]], row: StreamRow
    ) -> StagedAppend:
        """Score `points` (checked against `row`) without storing them."""
        served = await self.pool.get(row.model_name, version=row.pinned_version, alias=row.alias)
        cached = self._scorers.pop(stream_id, None)
        scored, events, scorer = await self.pool.infer(self._score, row, served, cached, list(points))
        state = json.dumps(scorer.to_state())
        return StagedAppend(stream_id, served.name, served.version, scored, events, row, scorer, state)

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
        loaded, scorer, scored = staged.row, staged.scorer, staged.points
        row = session.get(StreamRow, loaded.id)
        if row is None or row.revision != loaded.revision:
            raise ConflictError(
                f"stream {loaded.id!r} changed while these points were scored (deleted, reconfigured or "
                "written by another process); nothing was stored, send the points again"
            )
        session.add_all(_point_row(loaded.id, point, staged.model_version) for point in scored)
        for event in staged.events:
            _apply_event(session, loaded.id, event)
        open_row = _refresh_open_episode(session, loaded.id, scorer.policy.open_episode)
        row.state = staged.state
        row.state_model_version = scorer.model_version
        row.point_count = scorer.point_count
        row.last_timestamp = scorer.last_timestamp
        row.updated_at = utc_now()
        row.revision += 1
        self.alarm_sink(session, staged)
        return row.revision, _info(row, None if open_row is None else _stored_episode(open_row))

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

    def _remember(self, stream_id: str, revision: int, scorer: StreamScorer) -> None:
        self._scorers[stream_id] = (revision, scorer)
        while len(self._scorers) > MAX_CACHED_SCORERS:
            self._scorers.popitem(last=False)


# -------------------------------------------------------------------- validation
def check_stream_id(stream_id: str) -> None:
    if not stream_id or len(stream_id) > MAX_STREAM_ID or not stream_id.isprintable():
        raise InvalidInputError(
            f"stream id must be 1-{MAX_STREAM_ID} printable characters; got {stream_id[:40]!r}",
            fields={"field": "stream_id"},
        )


def check_points(points: Sequence[tuple[datetime, float]], last: datetime | None) -> None:
    """Refuse the whole batch unless timestamps strictly increase and follow the stream's last point."""
    if not points:
        raise InvalidInputError("send at least one point", fields={"field": "points"})
    for index, (stamp, value) in enumerate(points):
        if not isinstance(value, int | float) or value != value or value in (float("inf"), float("-inf")):
            raise InvalidInputError(
                f"points.{index}.value must be a finite number", fields={"field": f"points.{index}.value"}
            )
        if index and stamp <= points[index - 1][0]:
            kind = "duplicates" if stamp == points[index - 1][0] else "comes before"
            raise InvalidInputError(
                f"points.{index}.timestamp ({stamp.isoformat()}) {kind} points.{index - 1}.timestamp; "
                "timestamps must strictly increase within a request; nothing was stored",
                fields={"field": f"points.{index}.timestamp"},
            )
    first = points[0][0]
    if last is not None and first <= last:
        raise ConflictError(
            f"points.0.timestamp ({first.isoformat()}) is not after the stream's last point ({last.isoformat()}); "
            "points already stored cannot be replaced or inserted before; nothing was stored",
            fields={"field": "points.0.timestamp", "last_timestamp": last.isoformat()},
        )


def _sensitivity(value: float) -> float:
    try:
        return validate_sensitivity(value)
    except ValueError as error:
        raise InvalidInputError(str(error), fields={"field": "sensitivity"}) from error


# -------------------------------------------------------------------- rows
def _point_row(stream_id: str, point: ScoredPoint, model_version: int) -> StreamPointRow:
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


def _info(row: StreamRow, open_episode: Episode | None) -> StreamInfo:
    return StreamInfo(
        id=row.id,
        model=row.model_name,
        alias=row.alias,
        version=row.pinned_version,
        sensitivity=row.sensitivity,
        created_at=row.created_at,
        updated_at=row.updated_at,
        last_timestamp=row.last_timestamp,
        point_count=row.point_count,
        state_model_version=row.state_model_version,
        open_episode=open_episode,
    )
