"""Online interval calibration state, one row per (model, version, series): see `app.serving.online_intervals`."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.storage.base import Base
from app.timestamps import utc_now


class IntervalCalibrationRow(Base):
    """`state` is the versioned `OnlineIntervals` JSON: the `OnlineCalibrator` state (width factors per horizon
    step, level and side) and the series' recent actuals (the last window + horizon - 1 values and timestamps, the
    context of the forecasts the next actuals resolve). Fixed size per row; rows per model version are capped
    (the least recently updated go first)."""

    __tablename__ = "interval_calibrations"
    __table_args__ = (Index("ix_interval_calibrations_model_updated", "model_name", "version", "updated_at"),)

    model_name: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    series_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    observations: Mapped[int] = mapped_column(Integer, default=0)  # actuals folded in
    state: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(default=utc_now)
