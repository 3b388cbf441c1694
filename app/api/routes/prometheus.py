"""Prometheus remote write: `POST /api/v1/write` (remote write 1.0: a snappy-compressed protobuf WriteRequest).

Authenticated by an API key with role write, sent as Prometheus's `bearer_token` (or `authorization`
credentials). Series go to streams by the label rule (`app.prometheus`); 204 when stored, 503 when the database
is unavailable (Prometheus retries), 4xx for what a retry cannot fix (Prometheus drops the batch).
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response, status

from app.api.auth_first import AuthenticatedRoute
from app.api.deps import RemoteWriteDep, ServicesDep, WriteAccess
from app.concurrency import run_blocking
from app.prometheus.body import check_format, decode_body

router = APIRouter(tags=["prometheus"], route_class=AuthenticatedRoute)


@router.post(
    "/api/v1/write",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/x-protobuf": {"schema": {"type": "string", "format": "binary"}}},
        }
    },
)
async def remote_write(
    request: Request, services: ServicesDep, ingest: RemoteWriteDep, _: WriteAccess
) -> Response:
    """Store the samples of a Prometheus remote write request in streams (see the README's Prometheus part)."""
    check_format(request.headers.get("content-type"), request.headers.get("content-encoding"))
    limit = services.settings.remote_write_max_decompressed_bytes
    series = await run_blocking(decode_body, await request.body(), limit)
    await ingest.write(series)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
