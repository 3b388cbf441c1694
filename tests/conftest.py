"""Shared fixtures: a tiny real model in a temporary registry, and real servers on 127.0.0.1."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import httpx
import numpy as np
import pandas as pd
import pytest
import uvicorn

from app.registry.factory import open_registry
from app.settings import Settings
from app.storage.database import Database
from app.storage.schema import create_schema
from app.training.config import TrainingConfig
from app.training.data.prepared import prepare
from app.training.pipeline import train_model
from tests.postgres import MISSING_REASON, PostgresCluster, find_binaries

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
TINY_CONFIG = TrainingConfig(
    window=24, horizon=6, hidden=16, layers=1, epochs=4, batch_size=64, patience=2, seed=0
)


def synthetic_frame(points: int = 900, seed: int = 0, start: str = "2024-01-01") -> pd.DataFrame:
    """Hourly series with a daily cycle and noise."""
    rng = np.random.default_rng(seed)
    stamps = pd.date_range(start, periods=points, freq="h")
    hours = np.arange(points)
    values = 10.0 + 3.0 * np.sin(2 * np.pi * hours / 24) + rng.normal(0, 0.3, points)
    return pd.DataFrame({"timestamp": stamps, "value": values})


def train_tiny(
    models_dir: Path,
    name: str = "tiny",
    alias: str | None = "production",
    seed: int = 0,
    database_url: str | None = None,
) -> None:
    data = prepare(synthetic_frame(seed=seed), min_length=TINY_CONFIG.window + TINY_CONFIG.horizon)
    config = TrainingConfig(**{**TINY_CONFIG.to_dict(), "seed": seed})
    registry = open_registry(Settings(models_dir=models_dir, database_url=database_url))
    try:
        # 4 epochs lose to seasonal naive: forced, as the tiny models test plumbing, not accuracy
        train_model(data, name, registry, config, alias=alias, force=True)
    finally:
        registry.database.dispose()


# ------------------------------------------------------------------------------------------------ backends
# The API, streams, webhooks and storage suites run twice: on the embedded SQLite default and on a real
# PostgreSQL cluster (tests/postgres.py). A test there gets the `backend` parameter when it uses a database or a server;
# `sqlite_only` keeps a test that reads the SQLite file itself to one run, `postgres_only` runs only on PostgreSQL.
BACKEND_SUITES = ("api", "streams", "webhooks", "storage")
BACKENDS = ("sqlite", "postgresql")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames and hasattr(metafunc, "definition"):
        backends = _backends_for(metafunc.definition)
        if backends:
            metafunc.parametrize("backend", backends, indirect=True)


def _backends_for(item: pytest.Item) -> tuple[str, ...]:
    if item.get_closest_marker("postgres_only"):
        return ("postgresql",)
    suite = Path(str(item.path)).relative_to(REPO / "tests").parts[0]
    if suite not in BACKEND_SUITES or item.get_closest_marker("sqlite_only"):
        return ()
    return BACKENDS


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    """One PostgreSQL cluster for the session, on 127.0.0.1, stopped (by its pid) and removed at the end.

    Its folder is a fresh temporary one outside pytest's (whose parents are private to root, and the server
    may run as the `postgres` user)."""
    binaries = find_binaries()
    if binaries is None:
        pytest.skip(MISSING_REASON)
    root = Path(tempfile.mkdtemp(prefix="tswatch-pg-"))
    try:
        cluster = PostgresCluster.start(root, binaries)
        yield cluster
        cluster.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    """The backend under test: "sqlite" or "postgresql" (parametrised in the backend suites; SQLite elsewhere)."""
    return str(getattr(request, "param", "sqlite"))


@pytest.fixture
def database_url(backend: str, request: pytest.FixtureRequest) -> Iterator[str | None]:
    """The test's database URL: None for SQLite (the file in the models folder), else a fresh PostgreSQL
    database (a copy of the tiny registry's when the test uses `models_dir`), dropped after the test."""
    if backend == "sqlite":
        yield None
        return
    cluster: PostgresCluster = request.getfixturevalue("postgres_cluster")
    uses_tiny = TINY_FIXTURES.intersection(request.fixturenames)
    template = request.getfixturevalue("tiny_postgres").database if uses_tiny else None
    name = cluster.create_database(template)
    yield cluster.url(name)
    cluster.drop_database(name)


@pytest.fixture
def make_settings(database_url: str | None) -> Callable[..., Settings]:
    """`Settings(**overrides)` over the test's database (so in-process apps follow the backend parameter)."""

    def make(**overrides: Any) -> Settings:
        return Settings(**{"database_url": database_url, **overrides})

    return make


@pytest.fixture
def database(tmp_path: Path, database_url: str | None) -> Iterator[Database]:
    """An empty registry database (all tables): SQLite in a temporary folder, or a fresh PostgreSQL one."""
    database = Database(database_url or f"sqlite:///{tmp_path / 'registry.db'}")
    create_schema(database)
    yield database
    database.dispose()


def _train_tiny_pair(root: Path, database_url: str | None = None) -> None:
    train_tiny(root, alias="production", seed=0, database_url=database_url)
    train_tiny(root, alias=None, seed=1, database_url=database_url)


@pytest.fixture(scope="session")
def tiny_models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A registry holding `tiny` v1 (alias production) and v2 (no alias). Copy it before changing it."""
    root = tmp_path_factory.mktemp("tiny-registry")
    _train_tiny_pair(root)
    return root


@dataclass(frozen=True)
class TinyTemplate:
    database: str
    models_dir: Path


@pytest.fixture(scope="session")
def tiny_postgres(
    postgres_cluster: PostgresCluster, tmp_path_factory: pytest.TempPathFactory
) -> TinyTemplate:
    """The tiny registry on PostgreSQL: a template database and its models folder (copy both to change them)."""
    name = postgres_cluster.create_database()
    root = tmp_path_factory.mktemp("tiny-registry-pg")
    _train_tiny_pair(root, postgres_cluster.url(name))
    return TinyTemplate(name, root)


# Fixtures that stand for the tiny registry on the test's backend: on PostgreSQL `database_url` is then a copy
# of the tiny registry's database.
TINY_FIXTURES = frozenset({"models_dir", "tiny_registry_dir"})


@pytest.fixture
def tiny_registry_dir(backend: str, request: pytest.FixtureRequest) -> Path:
    """The tiny registry's folder on the test's backend, shared: read it, never change it (use `models_dir`)."""
    if backend == "sqlite":
        return Path(request.getfixturevalue("tiny_models_dir"))
    template: TinyTemplate = request.getfixturevalue("tiny_postgres")
    return template.models_dir


@pytest.fixture
def models_dir(tiny_registry_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the tiny registry for a test that changes it (with its database on PostgreSQL)."""
    target = tmp_path / "models"
    shutil.copytree(tiny_registry_dir, target)
    return target


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class ServerProcess:
    process: subprocess.Popen[bytes]
    base_url: str
    log_path: Path

    def client(self, key: str | None = None, timeout: float = 30.0) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        return self.process.returncode


def cli_env(models_dir: Path, database_url: str | None = None, **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("TSWATCH_")}
    env.update({"TSWATCH_MODELS_DIR": str(models_dir), "TSWATCH_ALIAS_POLL_SECONDS": "0.5"})
    if database_url is not None:
        env["TSWATCH_DATABASE_URL"] = database_url
    env.update(extra)
    return env


def start_server(
    models_dir: Path, log_dir: Path, database_url: str | None = None, **env: str
) -> ServerProcess:
    port = free_port()
    log_path = log_dir / f"server-{port}.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "app.cli.main", "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=cli_env(models_dir, database_url, **env),
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )
    server = ServerProcess(process, f"http://127.0.0.1:{port}", log_path)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{server.log()}")
        try:
            if httpx.get(f"{server.base_url}/readyz", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    server.stop(signal.SIGKILL)
    raise RuntimeError(f"server did not become ready:\n{server.log()}")


@pytest.fixture
def server_factory(tmp_path: Path, database_url: str | None) -> Iterator[Callable[..., ServerProcess]]:
    """Start real `tswatch serve` processes on 127.0.0.1 (over the test's database); every one is stopped (by
    pid) after the test."""
    started: list[ServerProcess] = []

    def factory(models_dir: Path, **env: str) -> ServerProcess:
        server = start_server(models_dir, tmp_path, database_url, **env)
        started.append(server)
        return server

    yield factory
    for server in started:
        server.stop(signal.SIGKILL if server.process.poll() is None else signal.SIGTERM, timeout=10)


@pytest.fixture
def run_cli(tmp_path: Path, database_url: str | None) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run the real `tswatch` console entry point in a subprocess (over the test's database)."""

    def run(
        models_dir: Path, *args: str, timeout: float = 300, **env: str
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "app.cli.main", *args],
            env=cli_env(models_dir, database_url, **env),
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=REPO,
        )

    return run


@contextmanager
def _live_server(app: Any, lifespan: Literal["on", "off"] = "off") -> Iterator[str]:
    """Run an ASGI app under a real uvicorn on an ephemeral loopback port, in a thread; yields its base URL.

    `lifespan="on"` runs the app's startup/shutdown (e.g. `create_app`'s services) like `tswatch serve`."""
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="critical", lifespan=lifespan)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture(scope="session")
def live_server() -> Callable[..., AbstractContextManager[str]]:
    """In-process real uvicorn for small test apps (stopped when the block exits)."""
    return _live_server


# ------------------------------------------------------------------------------------------------ slow marker
# `slow` = trains a real model, starts a server or a subprocess, or takes more than about a second. Tests that
# use one of these fixtures are marked here, so `pytest -m "not slow"` (the inner loop) never waits for them;
# the few slow tests without such a fixture carry an explicit mark.
SLOW_FIXTURES = frozenset(
    {"tiny_models_dir", "tiny_registry_dir", "models_dir", "server_factory", "run_cli", "live_server"}
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        fixtures = getattr(item, "fixturenames", ())
        if SLOW_FIXTURES.intersection(fixtures) or item.get_closest_marker("docker"):
            item.add_marker(pytest.mark.slow)
