"""The web dashboard at `/ui`, and the few read-only data routes it needs beyond the public API.

The page and its static files (`app/api/static`, plain HTML/CSS/JS, nothing from a CDN) need no key; every data
call the page makes sends the key the user typed (kept in sessionStorage) as `Authorization: Bearer` and needs
role `read`. `/v1/ui/session` always answers 200 so that the page can find out whether it needs a key (and which
optional features, such as webhooks, this server exposes) without provoking 401/404 responses.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path as FilePath
from typing import Annotated, Any

import pandas as pd
from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import FileResponse, RedirectResponse
from pydantic import BaseModel, Field
from sqlalchemy import func, select

from app.api.auth import AuthenticationError, ReadAccess, authenticate
from app.api.deps import RegistryDep, ServicesDep
from app.api.schemas import MAX_VERSION
from app.errors import NotFoundError
from app.registry.database import Database
from app.streams.tables import StreamEpisodeRow, StreamPointRow, StreamRow

STATIC_DIR = FilePath(__file__).resolve().parents[1] / "static"
MAX_UI_POINTS = 2000

pages = APIRouter(include_in_schema=False)
router = APIRouter(prefix="/v1/ui", tags=["dashboard"])


# -------------------------------------------------------------------- the page
@pages.get("/ui")
async def ui_redirect() -> RedirectResponse:
    return RedirectResponse("/ui/", status_code=307)


@pages.get("/ui/")
async def ui_index() -> FileResponse:
    return FileResponse(
        STATIC_DIR / "index.html", media_type="text/html", headers={"Cache-Control": "no-cache"}
    )


# -------------------------------------------------------------------- schemas
class SessionOut(BaseModel):
    auth_required: bool = Field(description="False on an open (key-less, loopback) server.")
    authenticated: bool = Field(description="The request's key (or open mode) grants access.")
    role: str | None = Field(description="Role of the caller, when authenticated.")
    key_id: str | None = Field(description="Id of the caller's key, when one was sent and accepted.")
    problem: str | None = Field(description="Why the caller is not authenticated, if not.")
    features: dict[str, bool] = Field(description="Optional API groups this server exposes (e.g. webhooks).")
    webhook_routes: list[str] = Field(description="GET paths of the webhooks API, when it is present.")


class RecentDataOut(BaseModel):
    model: str = Field(description="Model name.")
    version: int = Field(description="Version whose manifest the data comes from.")
    series: str = Field(description="Series id in the training data.")
    series_ids: list[str] = Field(description="Series with stored recent values.")
    frequency: str = Field(description="Data frequency (pandas alias).")
    window: int = Field(description="Points the model reads.")
    horizon: int = Field(description="Points the model forecasts.")
    timestamps: list[str] = Field(description="ISO 8601 UTC timestamps, oldest first.")
    values: list[float] = Field(description="Values, oldest first.")


class UiStreamOut(BaseModel):
    id: str = Field(description="Stream id.")
    model: str = Field(description="Model name.")
    alias: str | None = Field(description="Alias followed, if any.")
    version: int | None = Field(description="Pinned version, if any.")
    sensitivity: float = Field(description="Sensitivity in [0, 1].")
    point_count: int = Field(description="Points stored so far.")
    last_timestamp: datetime | None = Field(description="Timestamp of the last point.")
    updated_at: datetime = Field(description="Last change (UTC).")
    state_model_version: int | None = Field(description="Model version that scored the latest points.")
    open_alarms: int = Field(description="Open alarm episodes (0 or 1).")
    episodes: int = Field(description="Alarm episodes ever opened.")


class UiPointOut(BaseModel):
    index: int = Field(description="Position in the stream.")
    timestamp: datetime = Field(description="Timestamp (UTC).")
    value: float = Field(description="Observed value.")
    expected: float | None = Field(description="Lead-1 forecast median.")
    lower: float | None = Field(description="Lower edge of the 80% band.")
    upper: float | None = Field(description="Upper edge of the 80% band.")
    score: float | None = Field(description="Calibrated anomaly score.")
    is_anomaly: bool = Field(description="Flagged.")


# -------------------------------------------------------------------- routes
def _get_paths(request: Request) -> list[str]:
    """GET paths of the API, from its OpenAPI document (built once, then cached by FastAPI)."""
    paths: dict[str, dict[str, Any]] = request.app.openapi().get("paths", {})
    return sorted(path for path, operations in paths.items() if "get" in operations)


def _features(paths: list[str]) -> dict[str, bool]:
    return {
        "webhooks": any(path.startswith("/v1/webhooks") for path in paths),
        "streams": any(path.startswith("/v1/streams") for path in paths),
    }


@router.get("/session", response_model=SessionOut)
async def read_session(request: Request) -> SessionOut:
    """Whether this server needs a key, and whether the one sent (if any) is accepted. Always 200."""
    paths = _get_paths(request)
    features = _features(paths)
    webhook_routes = [path for path in paths if path.startswith("/v1/webhooks")]
    keys = request.app.state.services.keys
    required = await asyncio.to_thread(keys.has_active_keys)
    try:
        principal = await authenticate(request)
    except AuthenticationError as error:
        return SessionOut(
            auth_required=True,
            authenticated=False,
            role=None,
            key_id=None,
            problem=error.detail,
            features=features,
            webhook_routes=webhook_routes,
        )
    return SessionOut(
        auth_required=required,
        authenticated=True,
        role=principal.role.value,
        key_id=principal.key_id,
        problem=None,
        features=features,
        webhook_routes=webhook_routes,
    )


def _iso(stamp: Any) -> str:
    return pd.Timestamp(stamp).strftime("%Y-%m-%dT%H:%M:%SZ")


def recent_data(manifest: dict[str, Any], series: str | None) -> tuple[str, list[str], list[float]]:
    """The newest values the manifest holds for one series: the stored last window, preceded (for the first
    series) by the actual values of the stored test sample; timestamps rebuilt from the frequency."""
    data = manifest.get("data", {})
    last_values: dict[str, list[float]] = data.get("last_values", {})
    if not last_values:
        raise ValueError("this version's manifest stores no recent values")
    series_id = series if series is not None else next(iter(last_values))
    if series_id not in last_values:
        raise KeyError(series_id)
    values = last_values[series_id]
    end = pd.Timestamp(data["last_timestamps"][series_id])
    stamps = pd.date_range(end=end, periods=len(values), freq=manifest["spec"]["frequency"])
    merged = {_iso(stamp): float(value) for stamp, value in zip(stamps, values, strict=True)}
    sample = (manifest.get("report") or {}).get("test_sample") or {}
    if sample.get("series") == series_id:
        older = {
            _iso(stamp): float(value)
            for stamp, value in zip(sample["timestamps"], sample["actual"], strict=True)
        }
        merged = {**{k: v for k, v in older.items() if k < min(merged)}, **merged}
    ordered = sorted(merged)
    return series_id, ordered, [merged[key] for key in ordered]


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
    info = await asyncio.to_thread(registry.resolve, name, version)
    manifest = await asyncio.to_thread(registry.read_manifest, info)
    try:
        series_id, stamps, values = recent_data(manifest, series)
    except KeyError as error:
        raise NotFoundError(
            f"series {series!r} has no stored recent values in {name} v{info.version}"
        ) from error
    except ValueError as error:
        raise NotFoundError(f"{name} v{info.version}: {error}") from error
    return RecentDataOut(
        model=name,
        version=info.version,
        series=series_id,
        series_ids=list(manifest["data"]["last_values"]),
        frequency=manifest["spec"]["frequency"],
        window=manifest["spec"]["window"],
        horizon=manifest["spec"]["horizon"],
        timestamps=stamps,
        values=values,
    )


def _utc(stamp: datetime | None) -> datetime | None:
    return None if stamp is None else stamp.replace(tzinfo=UTC)


def _list_streams(database: Database) -> list[UiStreamOut]:
    with database.session() as session:
        episodes = dict(
            session.execute(
                select(StreamEpisodeRow.stream_id, func.count()).group_by(StreamEpisodeRow.stream_id)
            ).all()
        )
        open_episodes = dict(
            session.execute(
                select(StreamEpisodeRow.stream_id, func.count())
                .where(StreamEpisodeRow.resolved_at.is_(None))
                .group_by(StreamEpisodeRow.stream_id)
            ).all()
        )
        rows = session.scalars(select(StreamRow).order_by(StreamRow.id)).all()
        return [
            UiStreamOut(
                id=row.id,
                model=row.model_name,
                alias=row.alias,
                version=row.pinned_version,
                sensitivity=row.sensitivity,
                point_count=row.point_count,
                last_timestamp=_utc(row.last_timestamp),
                updated_at=_utc(row.updated_at),  # type: ignore[arg-type]
                state_model_version=row.state_model_version,
                open_alarms=open_episodes.get(row.id, 0),
                episodes=episodes.get(row.id, 0),
            )
            for row in rows
        ]


def _stream_points(database: Database, stream_id: str, limit: int) -> list[UiPointOut] | None:
    with database.session() as session:
        if session.get(StreamRow, stream_id) is None:
            return None
        rows = session.scalars(
            select(StreamPointRow)
            .where(StreamPointRow.stream_id == stream_id)
            .order_by(StreamPointRow.timestamp.desc())
            .limit(limit)
        ).all()
        return [
            UiPointOut(
                index=row.position,
                timestamp=_utc(row.timestamp),  # type: ignore[arg-type]
                value=row.value,
                expected=row.expected,
                lower=row.lower,
                upper=row.upper,
                score=row.score,
                is_anomaly=bool(row.is_anomaly),
            )
            for row in reversed(rows)
        ]


@router.get("/streams", response_model=list[UiStreamOut])
async def list_streams(services: ServicesDep, _: ReadAccess) -> list[UiStreamOut]:
    """Every stream with its point count, last timestamp and alarm counts (read-only)."""
    return await asyncio.to_thread(_list_streams, services.database)


@router.get("/streams/{stream_id}/points", response_model=list[UiPointOut])
async def list_stream_points(
    stream_id: Annotated[str, Path(min_length=1, max_length=200, description="Stream id.")],
    services: ServicesDep,
    _: ReadAccess,
    limit: Annotated[int, Query(ge=1, le=MAX_UI_POINTS, description="Newest points to return.")] = 300,
) -> list[UiPointOut]:
    """The newest stored points of a stream with their forecast band and score, oldest first."""
    points = await asyncio.to_thread(_stream_points, services.database, stream_id, limit)
    if points is None:
        raise NotFoundError(f"stream {stream_id!r} does not exist")
    return points
