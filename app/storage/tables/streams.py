"""Stream tables: stream configuration + scoring state, the scored points, and alarm episodes."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint, true
from sqlalchemy.orm import Mapped, mapped_column

from app.storage.base import Base
from app.timestamps import utc_now


class StreamRow(Base):
    """One stream. `model_name` is the registered model whose forecasts it scores against, NULL for a
    self-learning stream (it learns its own forecaster; `learning_points` sets its learning period, NULL for
    the detector's default). With `alerts` false the stream's alarms are stored but no webhooks fire.

    `state` is the `StreamScorer.to_state()` JSON: the last `window` (+ patch_len - 1) values and
    timestamps, the scaled-space hidden state per phase, the (loc, scale) anchor, the AdaptiveCalibrator and
    AlarmPolicy states, and the model name/version the state belongs to (also in `state_model_version`)."""

    __tablename__ = "streams"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    model_name: Mapped[str | None] = mapped_column(String(64), index=True, nullable=True)
    alias: Mapped[str | None] = mapped_column(String(64), nullable=True)
    pinned_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    sensitivity: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(default=utc_now)
    last_timestamp: Mapped[datetime | None] = mapped_column(nullable=True)
    point_count: Mapped[int] = mapped_column(Integer, default=0)
    revision: Mapped[int] = mapped_column(Integer, default=0)  # bumped by every change (optimistic locking)
    state_model_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    state: Mapped[str | None] = mapped_column(Text, nullable=True)
    state_position: Mapped[int | None] = mapped_column(
        Integer, nullable=True
    )  # NULL: state is as of point_count
    learning_points: Mapped[int | None] = mapped_column(Integer, nullable=True)
    alerts: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())


class StreamPointRow(Base):
    """One scored point, keyed by its position in the stream (0, 1, 2, ...), not its timestamp: a duplicate-
    timestamp or late reading is stored too (indexed by (`stream_id`, `timestamp`) for time queries). `value` is
    NULL for a missing reading; `sampling` says how the point's timing was handled ("regular", "gap",
    "reanchored", "duplicate", "late", "missing"; NULL for rows written before it was recorded)."""

    __tablename__ = "stream_points"
    __table_args__ = (Index("ix_stream_points_stream_id_timestamp", "stream_id", "timestamp"),)

    stream_id: Mapped[str] = mapped_column(ForeignKey("streams.id"), primary_key=True)
    timestamp: Mapped[datetime] = mapped_column()
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    value: Mapped[float | None] = mapped_column(Float, nullable=True)
    expected: Mapped[float | None] = mapped_column(Float, nullable=True)
    lower: Mapped[float | None] = mapped_column(Float, nullable=True)
    upper: Mapped[float | None] = mapped_column(Float, nullable=True)
    score: Mapped[float | None] = mapped_column(Float, nullable=True)
    is_anomaly: Mapped[bool] = mapped_column(Boolean, default=False)
    direction: Mapped[str | None] = mapped_column(String(8), nullable=True)
    model_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    sampling: Mapped[str | None] = mapped_column(String(16), nullable=True)


class StreamEpisodeRow(Base):
    """An alarm episode: opened at a flagged point, resolved after enough clean points (NULL while open)."""

    __tablename__ = "stream_episodes"
    __table_args__ = (UniqueConstraint("stream_id", "opened_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    stream_id: Mapped[str] = mapped_column(ForeignKey("streams.id"), index=True)
    started_at: Mapped[datetime] = mapped_column()
    opened_at: Mapped[datetime] = mapped_column()
    last_flagged_at: Mapped[datetime] = mapped_column()
    resolved_at: Mapped[datetime | None] = mapped_column(nullable=True)
    peak_timestamp: Mapped[datetime] = mapped_column()
    peak_score: Mapped[float] = mapped_column(Float)
    peak_value: Mapped[float] = mapped_column(Float)
    peak_expected: Mapped[float | None] = mapped_column(Float, nullable=True)
    direction: Mapped[str | None] = mapped_column(String(8), nullable=True)
    n_points: Mapped[int] = mapped_column(Integer)
    n_flagged: Mapped[int] = mapped_column(Integer)
