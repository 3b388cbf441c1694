"""Prometheus -> tswatch end to end, every part a real process on 127.0.0.1: a small exporter (a gauge the test
can spike), Debian's `prometheus` scraping it every second with `remote_write` pointed at `tswatch serve`.

Points arrive in the stream the label rule names, the injected spike opens an alarm (exported on /metrics), and
tswatch stopped for a while then started again on the same database loses nothing: Prometheus retries what it
could not send, and the stream holds every scraped sample across the gap, each once.
"""

from __future__ import annotations

import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from app.keys.store import KeyStore
from app.settings import Settings
from app.storage.schema import open_database
from app.storage.tables.streams import StreamPointRow
from app.timestamps import as_aware_utc, from_epoch_millis
from tests.conftest import REPO, ServerProcess, cli_env, free_port

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("prometheus") is None, reason="Debian's prometheus is not installed"),
]

LEARNING_POINTS = 20  # the shortest learning period: the stream scores from its 21st sample on


class Gauge:
    """The exporter's value: noise around 10, or a spike while `spiking`."""

    def __init__(self) -> None:
        self.random = random.Random(7)
        self.spiking = False
        self.lock = threading.Lock()

    def value(self) -> float:
        with self.lock:
            return 60.0 if self.spiking else 10.0 + self.random.gauss(0, 0.3)


@pytest.fixture
def exporter() -> Iterator[tuple[str, Gauge]]:
    """A real HTTP server on 127.0.0.1 serving `demo_gauge` in the text exposition format."""
    gauge = Gauge()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = f"# TYPE demo_gauge gauge\ndemo_gauge {gauge.value()}\n".encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}", gauge
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def start_tswatch(models_dir: Path, port: int, log_path: Path) -> ServerProcess:
    """`tswatch serve` on a fixed port (Prometheus's remote_write URL), ready when /readyz answers 200."""
    env = cli_env(
        models_dir,
        TSWATCH_INFERENCE_PROCESS="false",
        TSWATCH_REMOTE_WRITE_LEARNING_POINTS=str(LEARNING_POINTS),
        TSWATCH_REMOTE_WRITE_SENSITIVITY="0.9",
        TSWATCH_STREAM_METRICS="true",
    )
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "app.cli.main", "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )
    server = ServerProcess(process, f"http://127.0.0.1:{port}", log_path)
    wait_for(lambda: ready(server), 120, f"tswatch did not become ready:\n{server.log()}")
    return server


def ready(server: ServerProcess) -> bool:
    assert server.process.poll() is None, f"tswatch exited:\n{server.log()}"
    try:
        return httpx.get(f"{server.base_url}/readyz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


PROMETHEUS_CONFIG = """
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: demo
    static_configs:
      - targets: ["{target}"]
remote_write:
  - url: {write_url}
    authorization:
      credentials: {key}
    write_relabel_configs:
      - source_labels: [__name__]
        regex: demo_gauge
        action: keep
    queue_config:
      batch_send_deadline: 1s
      min_backoff: 100ms
      max_backoff: 1s
"""


@dataclass
class Prometheus:
    """Debian's `prometheus` on 127.0.0.1 with its own config, TSDB and log in `folder`."""

    folder: Path
    port: int
    process: subprocess.Popen[bytes] | None = None

    @classmethod
    def configured(cls, folder: Path, target: str, write_url: str, key: str) -> Prometheus:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "prometheus.yml").write_text(
            PROMETHEUS_CONFIG.format(target=target, write_url=write_url, key=key)
        )
        return cls(folder, free_port())

    @property
    def log_path(self) -> Path:
        return self.folder / "prometheus.log"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def start(self) -> None:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [
                    "prometheus",
                    f"--config.file={self.folder / 'prometheus.yml'}",
                    f"--storage.tsdb.path={self.folder / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_for(self.ready, 60, f"prometheus did not become ready:\n{self.log()}")

    def ready(self) -> bool:
        assert self.process is not None and self.process.poll() is None, f"prometheus exited:\n{self.log()}"
        try:
            return httpx.get(f"http://127.0.0.1:{self.port}/-/ready", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        """SIGTERM (Prometheus flushes its remote write queue on the way out), by pid."""
        if self.process is not None:
            stop(self.process)

    def scraped(self) -> list[datetime]:
        """Every sample it holds for demo_gauge (raw, from a range selector)."""
        answer = httpx.get(
            f"http://127.0.0.1:{self.port}/api/v1/query", params={"query": "demo_gauge[10m]"}, timeout=10
        )
        [series] = answer.json()["data"]["result"]
        return [from_epoch_millis(round(float(stamp) * 1000)) for stamp, _ in series["values"]]


def wait_for(condition: Callable[[], bool], seconds: float, message: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, message
        time.sleep(0.5)


def stored_timestamps(models_dir: Path, stream: str) -> list[datetime]:
    database = open_database(Settings(models_dir=models_dir))
    try:
        with database.session() as session:
            return list(
                session.scalars(
                    select(StreamPointRow.timestamp)
                    .where(StreamPointRow.stream_id == stream)
                    .order_by(StreamPointRow.position)
                )
            )
    finally:
        database.dispose()


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def test_prometheus_remote_write_feeds_a_stream_that_alarms_and_survives_restarts(
    tmp_path: Path, exporter: tuple[str, Gauge]
) -> None:
    target, gauge = exporter
    models_dir = tmp_path / "models"
    database = open_database(Settings(models_dir=models_dir))
    _, write_key = KeyStore(database).create("write", name="prometheus")
    _, read_key = KeyStore(database).create("read")
    database.dispose()
    port = free_port()
    stream = f"demo_gauge,{target}"
    tswatch = start_tswatch(models_dir, port, tmp_path / "tswatch.log")
    prometheus = Prometheus.configured(
        tmp_path / "prom", target, f"{tswatch.base_url}/api/v1/write", write_key
    )
    client = httpx.Client(base_url=tswatch.base_url, headers={"Authorization": f"Bearer {read_key}"})

    def info() -> dict[str, Any]:
        answer = client.get(f"/v1/streams/{stream}")
        return answer.json() if answer.status_code == 200 else {}

    def caught_up() -> bool:
        last = info().get("last_timestamp")
        return last is not None and datetime.fromisoformat(last).timestamp() > time.time() - 2

    try:
        prometheus.start()
        # points arrive; the stream learns, then scores
        wait_for(
            lambda: info().get("point_count", 0) >= LEARNING_POINTS + 8,
            120,
            f"no scored points arrived:\n{tswatch.log()}\n{prometheus.log()}",
        )
        assert info()["state"] == "scoring" and info()["open_alarm"] is None

        # an injected spike opens an alarm, exported on /metrics
        gauge.spiking = True
        wait_for(lambda: info().get("open_alarm") is not None, 30, "the spike opened no alarm")
        gauge.spiking = False
        assert f'tswatch_stream_alarm_open{{stream="{stream}"}} 1.0' in client.get("/metrics").text

        # tswatch stops for a while: Prometheus keeps scraping and retries until it is back
        tswatch.stop()
        tswatch_down = time.time()
        time.sleep(6)
        tswatch = start_tswatch(models_dir, port, tmp_path / "tswatch.log")
        wait_for(caught_up, 60, f"Prometheus did not catch up:\n{prometheus.log()}")
        assert len(client.get(f"/v1/streams/{stream}/anomalies").json()) == 1  # kept (resolved since, maybe)

        # Prometheus restarts: what it scraped before stopping is sent before it exits
        prometheus.stop()
        prometheus.start()
        wait_for(caught_up, 60, f"Prometheus did not resume:\n{prometheus.log()}")
        scraped = prometheus.scraped()
    finally:
        client.close()
        prometheus.stop()
        tswatch.stop()
    stored = stored_timestamps(models_dir, stream)
    assert len(stored) == len(set(stored)), "a retried sample was stored twice"
    covered = [stamp for stamp in scraped if stored[0] <= stamp <= stored[-1]]
    assert set(covered) <= set(stored), sorted(set(covered) - set(stored))[:5]
    gap = [stamp for stamp in covered if tswatch_down <= as_aware_utc(stamp).timestamp() <= tswatch_down + 6]
    assert len(gap) >= 4, "the samples scraped while tswatch was down are missing"
