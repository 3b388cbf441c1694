"""The web dashboard at `/ui`, and the few read-only data routes it needs beyond the public API.

The page and its static files (`app/api/static`, plain HTML/CSS/JS, nothing from a CDN) need no key; every data
call the page makes sends the key the user typed (kept in sessionStorage) as `Authorization: Bearer` and needs
role `read`. `/v1/ui/session` always answers 200 so that the page can find out whether it needs a key (and which
optional features, such as webhooks, this server exposes) without provoking 401/404 responses.
"""

from __future__ import annotations

from pathlib import Path as FilePath
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import FileResponse, RedirectResponse

from app.api.auth_first import AuthenticatedRoute
from app.api.deps import ReadAccess, RegistryDep, ServicesDep, StreamsDep
from app.api.schemas.common import MAX_VERSION, NO_NUL
from app.api.schemas.ui import RecentDataOut, SessionOut, UiPointOut, UiStreamOut
from app.api.session import describe_session
from app.concurrency import run_blocking
from app.registry.recent import fetch_recent_data

STATIC_DIR = FilePath(__file__).resolve().parents[1] / "static"
MAX_UI_POINTS = 2000

pages = APIRouter(include_in_schema=False)
router = APIRouter(prefix="/v1/ui", tags=["dashboard"], route_class=AuthenticatedRoute)


# -------------------------------------------------------------------- the page
@pages.get("/ui")
async def ui_redirect() -> RedirectResponse:
    return RedirectResponse("/ui/", status_code=307)


@pages.get("/ui/")
async def ui_index() -> FileResponse:
    return FileResponse(
        STATIC_DIR / "index.html", media_type="text/html", headers={"Cache-Control": "no-cache"}
    )


# -------------------------------------------------------------------- data
@router.get("/session", response_model=SessionOut)
async def read_session(request: Request, services: ServicesDep) -> SessionOut:
    """Whether this server needs a key, and whether the one sent (if any) is accepted. Always 200."""
    return await describe_session(request, services)


@router.get("/models/{name}/recent", response_model=RecentDataOut)
async def read_recent_data(
    name: str,
    registry: RegistryDep,
    _: ReadAccess,
    version: Annotated[
        int | None, Query(ge=1, le=MAX_VERSION, description="Version; default as for forecasts.")
    ] = None,
    series: Annotated[str | None, Query(max_length=200, description="Series id; default: the first.")] = None,
) -> RecentDataOut:
    """The most recent training values stored in a version's manifest, ready to send to forecast/detect."""
    used, recent = await run_blocking(fetch_recent_data, registry, name, version, series)
    return RecentDataOut.of(name, used, recent)


@router.get("/streams", response_model=list[UiStreamOut])
async def list_streams(streams: StreamsDep, _: ReadAccess) -> list[UiStreamOut]:
    """Every stream with its point count, last timestamp and alarm counts (read-only)."""
    return [UiStreamOut.of(summary) for summary in await streams.summaries()]


@router.get("/streams/{stream_id}/points", response_model=list[UiPointOut])
async def list_stream_points(
    stream_id: Annotated[str, Path(min_length=1, max_length=200, description="Stream id."), NO_NUL],
    streams: StreamsDep,
    _: ReadAccess,
    limit: Annotated[int, Query(ge=1, le=MAX_UI_POINTS, description="Newest points to return.")] = 300,
) -> list[UiPointOut]:
    """The newest stored points of a stream with their forecast band and score, oldest first."""
    return [UiPointOut.of(point) for point in await streams.latest_points(stream_id, limit)]
