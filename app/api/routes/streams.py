"""Streams kept by the server: configure a stream, append points (scored incrementally), read alarms."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response, status

from app.api.auth_first import AuthenticatedRoute
from app.api.deps import ReadAccess, StreamsDep, WriteAccess
from app.api.pagination import (
    DEFAULT_LIMIT,
    CursorQuery,
    LimitQuery,
    decode_cursor,
    encode_cursor,
    link_next,
    page,
)
from app.api.schemas.common import NO_NUL
from app.api.schemas.streams import (
    AlertsQuery,
    AppendRequest,
    AppendResponse,
    EpisodeOut,
    StreamConfigRequest,
    StreamOut,
    StreamPage,
    StreamSummaryOut,
)
from app.timestamps import clamp_to_naive_utc, from_state_iso

router = APIRouter(prefix="/v1/streams", tags=["streams"], route_class=AuthenticatedRoute)

StreamId = Annotated[
    str, Path(min_length=1, max_length=200, description="Caller's id of the stream."), NO_NUL
]


@router.get("", response_model=StreamPage)
async def list_streams(
    request: Request,
    response: Response,
    streams: StreamsDep,
    _: ReadAccess,
    limit: LimitQuery = DEFAULT_LIMIT,
    cursor: CursorQuery = None,
) -> StreamPage:
    """Streams ordered by id, a page at a time: follow `next_cursor` (or the `Link: rel="next"` header)."""
    after = None if cursor is None else str(decode_cursor("streams", cursor, [str])[0])
    items, more = page(await streams.summaries(after, limit + 1), limit)
    next_cursor = encode_cursor("streams", [items[-1].id]) if more else None
    link_next(request, response, next_cursor)
    return StreamPage(streams=[StreamSummaryOut.of(item) for item in items], next_cursor=next_cursor)


@router.put("/{stream_id}", response_model=StreamOut)
async def put_stream(
    stream_id: StreamId, body: StreamConfigRequest, streams: StreamsDep, response: Response, _: WriteAccess
) -> StreamOut:
    """Create a stream (without `model`: a self-learning one), or change its settings (stored points are kept;
    a new model, alias, version or learning_points restarts the detector)."""
    info, created = await streams.upsert(
        stream_id, body.model, body.alias, body.version, body.sensitivity, body.learning_points, body.alerts
    )
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
    return StreamOut.of(info)


@router.post("/{stream_id}/points", response_model=AppendResponse)
async def append_points(
    stream_id: StreamId, body: AppendRequest, streams: StreamsDep, _: WriteAccess, alerts: AlertsQuery = True
) -> AppendResponse:
    """Append points: each is scored using only it and earlier ones; stored before the reply."""
    readings = [(point.timestamp, point.value) for point in body.points]
    return AppendResponse.of(stream_id, await streams.append(stream_id, readings, alerts=alerts))


@router.get("/{stream_id}", response_model=StreamOut)
async def read_stream(stream_id: StreamId, streams: StreamsDep, _: ReadAccess) -> StreamOut:
    """Configuration, detector state (learning / scoring, refits), point count and the open alarm of a stream."""
    return StreamOut.of(await streams.get(stream_id))


@router.get("/{stream_id}/anomalies", response_model=list[EpisodeOut])
async def list_stream_anomalies(
    stream_id: StreamId,
    request: Request,
    response: Response,
    streams: StreamsDep,
    _: ReadAccess,
    since: Annotated[
        datetime | None, Query(description="Only episodes open or resolved at/after this time (UTC).")
    ] = None,
    limit: LimitQuery = DEFAULT_LIMIT,
    cursor: CursorQuery = None,
) -> list[EpisodeOut]:
    """Alarm episodes of the stream, oldest first, a page at a time: when more follow, the `Link: rel="next"`
    header holds the next page's URL (same `since`)."""
    after = None if cursor is None else decode_cursor("anomalies", cursor, [datetime])[0]
    assert after is None or isinstance(after, datetime)
    naive_since = None if since is None else clamp_to_naive_utc(since)
    episodes, more = page(await streams.anomalies(stream_id, naive_since, after, limit + 1), limit)
    last = from_state_iso(episodes[-1].opened_at) if episodes else None
    link_next(request, response, encode_cursor("anomalies", [last]) if more and last else None)
    return [EpisodeOut.of(episode) for episode in episodes]


@router.delete("/{stream_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_stream(stream_id: StreamId, streams: StreamsDep, _: WriteAccess) -> Response:
    """Delete the stream with its points and episodes."""
    await streams.delete(stream_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
