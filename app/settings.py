"""The single configuration object. Built once by the entry point and passed down; never read at import."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# Standard Webhooks' example schedule: immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h.
DEFAULT_WEBHOOK_RETRY_SCHEDULE = (0.0, 5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)
DEFAULT_STREAM_SNAPSHOT_POINTS = 256


def _split_commas(value: Any) -> Any:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    """Every knob of tswatch. Environment variables use the prefix `TSWATCH_` (e.g. `TSWATCH_MODELS_DIR`)."""

    model_config = SettingsConfigDict(env_prefix="TSWATCH_", env_file=None, extra="ignore")

    models_dir: Path = Field(
        Path("./models"), description="Registry root: artifacts and the SQLite database."
    )
    database_url: str | None = Field(
        None,
        description="SQLAlchemy URL of the registry database; default sqlite:///<models_dir>/registry.db.",
    )
    host: str = Field("127.0.0.1", description="Address the server binds to.")
    port: int = Field(8000, ge=0, le=65535, description="Port the server listens on.")
    torch_threads: int = Field(1, ge=1, description="Threads torch may use for inference and training.")
    admin_key: SecretStr | None = Field(None, description="Bootstraps one admin API key (for containers).")
    max_body_bytes: int = Field(4 * 1024 * 1024, ge=1024, description="Largest accepted request body.")
    alias_poll_seconds: float = Field(2.0, gt=0, description="How often the server re-reads aliases.")
    inference_process: bool = Field(
        True,
        description="Run batched forecasts in a child worker process, so model compute never holds the "
        "server's GIL (false: a thread in the server process; streams always use that thread, detection its own).",
    )
    batch_max_wait_ms: float = Field(
        0.0, ge=0, description="Extra wait for company when the model is idle (0: none)."
    )
    batch_max_size: int = Field(256, ge=1, description="Most forecast requests answered in one batch.")
    max_detect_points: int = Field(
        200_000,
        ge=1,
        description="Most points (all series together) one /detect request may score; more answers 413.",
    )
    shutdown_grace_seconds: float = Field(8.0, ge=0, description="Time in-flight requests get on SIGTERM.")
    header_timeout_seconds: float = Field(
        10.0,
        gt=0,
        description="Time a connection gets to send a request's headers (from connecting, or from the previous "
        "response); later answers 408 and closes.",
    )
    body_timeout_seconds: float = Field(
        30.0,
        gt=0,
        description="Time a request's whole body gets to arrive after its headers; later answers 408 and closes.",
    )
    max_connections: int = Field(
        1000, ge=1, description="Most open client connections; one more is answered 503 and closed."
    )
    demo_on_empty: bool = Field(
        False, description="Train the demo models at start when the registry is empty."
    )
    ray_address: str | None = Field(
        None,
        description="Ray cluster `tswatch train` runs its fits on (host:port of the head, or ray://...); "
        "unset: training runs in this process. Needs the `ray` extra: pip install 'tswatch[ray]'.",
    )
    stream_interval_calibration: bool = Field(
        True,
        description="Model-bound streams' readings feed the online interval calibration of the series named "
        "like the stream (app.serving.online_intervals); false: only POST /v1/models/{name}/actuals does.",
    )
    stream_snapshot_points: int = Field(
        DEFAULT_STREAM_SNAPSHOT_POINTS,
        ge=1,
        description="A stream's scoring state stays in memory and is stored as a snapshot every this many "
        "points (and at model version or sensitivity changes); a restart replays the points stored since. "
        "Lower: smaller replays, more state writes.",
    )
    webhook_retry_schedule: Annotated[list[float], NoDecode] = Field(
        default_factory=lambda: list(DEFAULT_WEBHOOK_RETRY_SCHEDULE),
        description="Outbound webhook attempts: comma-separated delays in seconds (first = initial delay).",
    )
    webhook_allow_cidrs: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated CIDRs outbound webhooks may reach even though they are not public.",
    )
    webhook_timeout_seconds: float = Field(
        10.0,
        gt=0,
        description="Total deadline of one webhook attempt (resolve, connect, send, response headers).",
    )
    webhook_endpoint_concurrency: int = Field(
        2, ge=1, description="Most webhook attempts in flight to one endpoint (of 32 in all)."
    )
    webhook_disable_after: int = Field(
        5, ge=1, description="Consecutive failed messages after which an endpoint is disabled."
    )
    max_training_jobs: int = Field(
        1,
        ge=1,
        description="Training jobs this server runs at once, each in its own worker process; more wait queued.",
    )
    max_upload_bytes: int = Field(
        100 * 1024 * 1024,
        ge=1024,
        description="Largest body of `POST /v1/models/{name}/versions` (a CSV/Parquet upload or JSON series); "
        "more answers 413.",
    )
    max_training_rows: int = Field(
        5_000_000, ge=1, description="Most rows (points) a training job may read; more answers 413."
    )
    max_training_series: int = Field(
        10_000,
        ge=1,
        description="Most series a training job may train on; more answers 413 (or fails the job).",
    )
    job_heartbeat_seconds: float = Field(
        2.0,
        gt=0,
        description="How often a server looks for queued training jobs and refreshes the heartbeat of its own.",
    )
    job_stale_seconds: float = Field(
        60.0,
        gt=0,
        description="A running training job whose server has not refreshed its heartbeat for this long (the "
        "server died) is failed by the next server that notices.",
    )

    remote_write_labels: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["__name__", "instance"],
        description="Prometheus remote write: comma-separated labels whose values (joined by commas) name the "
        "stream a series goes to.",
    )
    remote_write_max_streams: int = Field(
        1000,
        ge=0,
        description="Prometheus remote write creates a stream for a new series only while fewer streams than "
        "this exist (all streams count); samples of further new series are dropped and counted.",
    )
    remote_write_max_decompressed_bytes: int = Field(
        32 * 1024 * 1024,
        ge=1024,
        description="Largest decompressed remote write body (the compressed one is bounded by max_body_bytes); "
        "more answers 413.",
    )
    remote_write_learning_points: int | None = Field(
        None, description="Learning period of streams remote write creates (empty: the detector's default)."
    )
    remote_write_sensitivity: float | None = Field(
        None, description="Sensitivity of streams remote write creates (empty: the default)."
    )
    stream_metrics: bool = Field(
        False,
        description="Export each stream's newest score and open-alarm state on /metrics "
        "(tswatch_stream_score, tswatch_stream_alarm_open).",
    )
    stream_metrics_max: int = Field(
        1000,
        ge=0,
        description="Most streams /metrics exports (the first by id); tswatch_stream_metrics_omitted counts the "
        "rest.",
    )

    @field_validator("remote_write_labels", mode="before")
    @classmethod
    def _label_names(cls, value: Any) -> Any:
        return _split_commas(value)

    @field_validator("webhook_retry_schedule", "webhook_allow_cidrs", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        return _split_commas(value)

    @field_validator("webhook_retry_schedule")
    @classmethod
    def _check_schedule(cls, value: list[float]) -> list[float]:
        if not value or any(delay < 0 or delay != delay or delay == float("inf") for delay in value):
            raise ValueError("the retry schedule needs at least one finite delay >= 0 seconds")
        return value

    @field_validator("webhook_allow_cidrs")
    @classmethod
    def _check_cidrs(cls, value: list[str]) -> list[str]:
        for cidr in value:
            ipaddress.ip_network(cidr, strict=True)  # ValueError names the bad CIDR
        return value

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.models_dir / 'registry.db').resolve()}"
