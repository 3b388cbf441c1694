"""Read-only queries over the stream tables for overviews (the dashboard): summaries and the newest points (by
position: the order they were appended in, duplicate and late readings included)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import cast, get_args

from sqlalchemy import func, select
from sqlalchemy.orm import defer

from app.anomaly.points import Sampling, ScoredPoint
from app.storage.database import Database
from app.storage.tables.streams import StreamEpisodeRow, StreamPointRow, StreamRow


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
