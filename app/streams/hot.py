"""Hot stream state: each stream's `StreamState` kept in memory, stored as a snapshot every so often.

Every append stores its points (timestamp, value, scores) and bumps the stream row's `revision` and
`point_count`, but writes the ~70 kB `state` only as a snapshot: every `snapshot_points` readings, and always
when the append re-bound the forecasts to another model version (a replay must never cross a change of what
scores). `streams.state_position` is the position the snapshot was taken at (NULL on rows written before
snapshots: the state is as of `point_count`). Configuration changes that change scoring (model binding,
sensitivity) write a snapshot as of `point_count` in the same transaction (`StreamService.upsert`).

A stream not in memory (restart, eviction, another replica wrote it) is rebuilt from the snapshot plus the stored
readings after it, replayed in position order through the same `StreamState.append` that scored them (their
answers discarded): since scoring depends only on the readings, the sensitivity and the model version, and none
of those changed between the snapshot and `point_count`, the rebuilt state is bitwise the uninterrupted one.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import defer

from app.errors import NotFoundError
from app.storage.database import Database
from app.storage.tables.streams import StreamPointRow, StreamRow
from app.streams.scoring import Reading, ServingModel, StreamState


@dataclass
class HotStream:
    """A stream's scoring state in memory, as of `row` (detached, its `state` column not loaded)."""

    row: StreamRow  # configuration, revision and point_count as stored
    stream: StreamState  # as of row.point_count
    snapshot_position: int  # position of the stored snapshot (readings since it are replayed on a rebuild)


@dataclass(frozen=True)
class StoredStream:
    """A stream row, its snapshot and the readings stored after it, read in one transaction."""

    row: StreamRow  # detached, `state` not loaded
    state: str | None  # the snapshot's JSON (None: a fresh detector at `snapshot_position`)
    snapshot_position: int
    readings: list[Reading]  # positions snapshot_position .. point_count - 1, in order


def not_found(stream_id: str) -> NotFoundError:
    return NotFoundError(f"stream {stream_id!r} does not exist; create it with PUT /v1/streams/{stream_id}")


def read_stored(database: Database, stream_id: str) -> StoredStream:
    """The row, snapshot and readings to replay; NotFoundError when the stream does not exist.

    Readings are bounded by the row's `point_count`: those positions were committed with (or before) the row
    version read, so the set is consistent even where each statement sees its own snapshot (READ COMMITTED)."""
    with database.session() as session:
        row = session.get(StreamRow, stream_id, options=[defer(StreamRow.state)])
        if row is None:
            raise not_found(stream_id)
        state = session.scalar(select(StreamRow.state).where(StreamRow.id == stream_id))
        start = row.point_count if row.state_position is None else row.state_position
        query = (
            select(StreamPointRow.timestamp, StreamPointRow.value)
            .where(
                StreamPointRow.stream_id == stream_id,
                StreamPointRow.position >= start,
                StreamPointRow.position < row.point_count,
            )
            .order_by(StreamPointRow.position)
        )
        readings: list[Reading] = [(timestamp, value) for timestamp, value in session.execute(query)]
        if len(readings) != row.point_count - start:
            raise RuntimeError(
                f"stream {stream_id!r}: {len(readings)} stored points after its snapshot at position {start}, "
                f"expected {row.point_count - start}"
            )
        session.expunge(row)
        return StoredStream(row, state, start, readings)


def replay(stream: StreamState, serving: ServingModel | None, readings: list[Reading]) -> None:
    """Feed `readings` (already scored and stored) through `stream` again, answers and alarm events discarded.

    `serving` must be the model version the snapshot is bound to (None: self-learning, or not bound yet)."""
    if not readings:
        return
    stream.bind(serving)
    for timestamp, value in readings:
        stream.append(timestamp, value)
