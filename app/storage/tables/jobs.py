"""Training jobs (`POST /v1/models/{name}/versions`): one row per job, written by the server that owns it and
by its worker process (progress, result)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.storage.base import Base
from app.timestamps import utc_now


class TrainingJobRow(Base):
    __tablename__ = "training_jobs"
    __table_args__ = (
        Index("ix_training_jobs_created", "created_at", "id"),
        Index("ix_training_jobs_status", "status", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    model_name: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))  # queued | running | succeeded | failed | cancelled
    options: Mapped[str] = mapped_column(Text, default="{}")  # JSON: the training options as given
    source: Mapped[str] = mapped_column(String(256))  # the uploaded file's name, or "series (JSON)"
    input_file: Mapped[str] = mapped_column(String(256))  # the saved input, in the job's folder
    created_by: Mapped[str | None] = mapped_column(String(64), nullable=True)  # API key id (None: anonymous)
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    started_at: Mapped[datetime | None] = mapped_column(nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(nullable=True)
    # The server instance running the job ("host:pid:token"), its worker's pid, and the owner's last sign of
    # life: a running job whose owner is gone is failed by the next server that notices.
    owner: Mapped[str | None] = mapped_column(String(200), nullable=True)
    worker_pid: Mapped[int | None] = mapped_column(Integer, nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(nullable=True)
    progress: Mapped[str] = mapped_column(Text, default="{}")  # JSON: phase, epoch, epochs, losses
    metrics: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON: test metrics, training summary
    result_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
