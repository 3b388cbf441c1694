"""Read-only queries over the stream tables for overviews (the dashboard): summaries and the newest points (by
position: the order they were appended in, duplicate and late readings included)."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Final, cast, get_args

from sqlalchemy import func, select
from sqlalchemy.orm import Session, defer

from app.anomaly.points import Sampling, ScoredPoint
from app.storage.database import Database
from app.storage.tables.streams import StreamEpisodeRow, StreamPointRow, StreamRow

ID_CHUNK: Final = 500  # stream ids per IN (...) list


@dataclass(frozen=True)
class StreamSummary:
    id: str
    model: str | None  # None: a self-learning stream
    alias: str | None
    version: int | None  # pinned version
    sensitivity: float
    point_count: int
    last_timestamp: datetime | None  # naive UTC
    updated_at: datetime  # naive UTC
    state_model_version: int | None
    open_alarms: int
    episodes: int


def stream_summaries(
    database: Database, after: str | None = None, limit: int | None = None
) -> list[StreamSummary]:
    """Streams with their alarm counts (all episodes, open ones), ordered by id: those after the id `after`
    (all when None), at most `limit` (all when None)."""
    with database.session() as session:
        query = select(StreamRow).options(defer(StreamRow.state)).order_by(StreamRow.id).limit(limit)
        if after is not None:
            query = query.where(StreamRow.id > after)
        rows = session.scalars(query).all()
        by_stream = select(StreamEpisodeRow.stream_id, func.count()).group_by(StreamEpisodeRow.stream_id)
        if rows:  # only the page's range of ids (the same order as the rows')
            by_stream = by_stream.where(StreamEpisodeRow.stream_id.between(rows[0].id, rows[-1].id))
        episodes = {stream_id: count for stream_id, count in session.execute(by_stream)}
        still_open = by_stream.where(StreamEpisodeRow.resolved_at.is_(None))
        open_episodes = {stream_id: count for stream_id, count in session.execute(still_open)}
        return [
            StreamSummary(
                id=row.id,
                model=row.model_name,
                alias=row.alias,
                version=row.pinned_version,
                sensitivity=row.sensitivity,
                point_count=row.point_count,
                last_timestamp=row.last_timestamp,
                updated_at=row.updated_at,
                state_model_version=row.state_model_version,
                open_alarms=open_episodes.get(row.id, 0),
                episodes=episodes.get(row.id, 0),
            )
            for row in rows
        ]


def _sampling(stored: str | None) -> Sampling:
    """A stored point's sampling ("regular" for rows written before it was recorded)."""
    return cast(Sampling, stored) if stored in get_args(Sampling) else "regular"


def latest_points(database: Database, stream_id: str, limit: int) -> list[ScoredPoint] | None:
    """The newest `limit` stored points of a stream, oldest first; None when the stream does not exist."""
    with database.session() as session:
        if session.get(StreamRow, stream_id) is None:
            return None
        rows = session.scalars(
            select(StreamPointRow)
            .where(StreamPointRow.stream_id == stream_id)
            .order_by(StreamPointRow.position.desc())
            .limit(limit)
        ).all()
        return [
            ScoredPoint(
                index=row.position,
                timestamp=row.timestamp,
                value=row.value,
                expected=row.expected,
                lower=row.lower,
                upper=row.upper,
                score=row.score,
                is_anomaly=bool(row.is_anomaly),
                direction=row.direction,
                sampling=_sampling(row.sampling),
            )
            for row in reversed(rows)
        ]


def last_timestamps(database: Database, ids: Collection[str]) -> dict[str, datetime | None]:
    """The newest timestamp received by each of these streams that exists (None: none received yet)."""
    found: dict[str, datetime | None] = {}
    chunk = sorted(ids)
    with database.session() as session:
        for start in range(0, len(chunk), ID_CHUNK):  # bounded IN lists
            query = select(StreamRow.id, StreamRow.last_timestamp).where(
                StreamRow.id.in_(chunk[start : start + ID_CHUNK])
            )
            found.update({stream_id: last for stream_id, last in session.execute(query)})
    return found


def count_streams(database: Database) -> int:
    with database.session() as session:
        return _count(session)


def _count(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(StreamRow)) or 0)


@dataclass(frozen=True)
class StreamHealth:
    """A stream's newest score and whether an alarm is open (what /metrics exports per stream)."""

    id: str
    score: float | None  # the newest stored point's score; None while learning or for a missing reading
    alarm_open: bool


def stream_health(database: Database, limit: int) -> tuple[list[StreamHealth], int]:
    """The first `limit` streams by id with their newest score and open-alarm state, and how many streams exist
    in all."""
    with database.session() as session:
        total = _count(session)
        newest = (StreamPointRow.stream_id == StreamRow.id) & (
            StreamPointRow.position == StreamRow.point_count - 1  # positions count 0, 1, 2, ...
        )
        query = (
            select(StreamRow.id, StreamPointRow.score)
            .outerjoin(StreamPointRow, newest)
            .order_by(StreamRow.id)
            .limit(limit)
        )
        scores: dict[str, float | None] = {stream_id: score for stream_id, score in session.execute(query)}
        ids = list(scores)
        if not ids:
            return [], total
        open_ids = set(
            session.scalars(
                select(StreamEpisodeRow.stream_id).where(
                    StreamEpisodeRow.resolved_at.is_(None),
                    StreamEpisodeRow.stream_id.between(ids[0], ids[-1]),
                )
            )
        )
        return [StreamHealth(i, scores.get(i), i in open_ids) for i in ids], total
