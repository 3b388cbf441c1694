"""The single configuration object. Built once by the entry point and passed down; never read at import."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


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
    batch_max_wait_ms: float = Field(2.0, ge=0, description="Longest a forecast waits to be batched.")
    batch_max_size: int = Field(256, ge=1, description="Most series coalesced into one forward pass.")
    shutdown_grace_seconds: float = Field(8.0, ge=0, description="Time in-flight requests get on SIGTERM.")
    enable_echo: bool = Field(
        False, description="Serve POST /v1/echo, the HTTP-stack baseline of bench/serve.py."
    )
    demo_on_empty: bool = Field(
        False, description="Train the demo models at start when the registry is empty."
    )

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.models_dir / 'registry.db').resolve()}"
