"""`POST /api/v1/write` and the per-stream metrics against a real server (uvicorn on 127.0.0.1, real SQLite):
streams created by the label rule, retried batches stored once, the stream bound, keys, malformed and oversized
bodies as problem+json, a storage failure as a 503 that a retry recovers from."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from app.api.app import create_app
from app.keys.store import KeyStore
from app.settings import Settings
from app.storage.schema import open_database
from app.storage.tables.streams import StreamPointRow

from .helpers import HEADERS, snappy, varint, write_request

START_MS = 1_700_000_000_000
NODE = {"__name__": "node_load1", "instance": "db1:9100", "job": "node"}
DISK = {"__name__": "disk_used", "instance": "db1:9100"}


@dataclass(frozen=True)
class Served:
    url: str
    settings: Settings
    write_key: str
    read_key: str
    admin_key: str

    def client(self, key: str | None = None) -> httpx.Client:
        token = self.write_key if key is None else key
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {token}"}, timeout=30)

    def stored(self, stream: str) -> list[tuple[datetime, float | None]]:
        database = open_database(self.settings)
        try:
            with database.session() as session:
                rows = session.execute(
                    select(StreamPointRow.timestamp, StreamPointRow.value)
                    .where(StreamPointRow.stream_id == stream)
                    .order_by(StreamPointRow.position)
                ).all()
                return [(stamp, value) for stamp, value in rows]
        finally:
            database.dispose()


@pytest.fixture
def serve(
    tmp_path: Path, live_server: Callable[..., AbstractContextManager[str]]
) -> Callable[..., AbstractContextManager[Served]]:
    from contextlib import contextmanager

    @contextmanager
    def start(**overrides: Any) -> Iterator[Served]:
        settings = Settings(**{"models_dir": tmp_path / "models", "inference_process": False, **overrides})
        database = open_database(settings)
        keys = KeyStore(database)
        _, write_key = keys.create("write")
        _, read_key = keys.create("read")
        _, admin_key = keys.create("admin")
        database.dispose()
        with live_server(create_app(settings), lifespan="on") as url:
            yield Served(url, settings, write_key, read_key, admin_key)

    return start


def post(client: httpx.Client, body: bytes, **headers: str) -> httpx.Response:
    return client.post("/api/v1/write", content=body, headers={**HEADERS, **headers})


def seconds(count: int, start: int = 0) -> list[tuple[int, float]]:
    return [(START_MS + 1000 * (start + i), float(i % 7)) for i in range(count)]


def test_series_become_streams_and_a_retried_batch_is_stored_once(serve: Any) -> None:
    with serve() as served, served.client() as client:
        body = snappy(write_request([(NODE, seconds(5)), (DISK, seconds(3))]))
        answer = post(client, body)
        assert answer.status_code == 204, answer.text
        assert post(client, body).status_code == 204  # Prometheus retried: nothing stored twice
        overlapping = snappy(write_request([(NODE, seconds(4, start=3))]))  # 2 stored already, 2 new
        assert post(client, overlapping).status_code == 204
        stream = client.get("/v1/streams/node_load1,db1:9100")
        assert stream.status_code == 200, stream.text
        assert stream.json()["point_count"] == 7
        assert client.get("/v1/streams/disk_used,db1:9100").json()["point_count"] == 3
        stored = served.stored("node_load1,db1:9100")
        assert [stamp for stamp, _ in stored] == sorted({stamp for stamp, _ in stored})
        assert stored[0] == (datetime(2023, 11, 14, 22, 13, 20), 0.0)
        metrics = client.get("/metrics").text
        assert 'tswatch_remote_write_samples_total{outcome="stored"} 10.0' in metrics
        assert 'tswatch_remote_write_samples_total{outcome="duplicate"} 10.0' in metrics
        assert "tswatch_stream_score" not in metrics  # opt-in


def test_new_series_beyond_the_stream_bound_are_dropped_not_refused(serve: Any) -> None:
    with serve(remote_write_max_streams=2) as served, served.client() as client:
        third = {"__name__": "zz_last", "instance": "x"}
        body = snappy(write_request([(NODE, seconds(2)), (DISK, seconds(2)), (third, seconds(2))]))
        assert post(client, body).status_code == 204
        ids = [item["id"] for item in client.get("/v1/streams").json()["streams"]]
        assert ids == ["disk_used,db1:9100", "node_load1,db1:9100"]
        assert post(client, snappy(write_request([(NODE, seconds(2, start=2))]))).status_code == 204
        assert client.get("/v1/streams/node_load1,db1:9100").json()["point_count"] == 4
        metrics = client.get("/metrics").text
        assert 'tswatch_remote_write_samples_total{outcome="stream_limit"} 2.0' in metrics


def test_new_streams_take_the_configured_learning_period_and_label_rule(serve: Any) -> None:
    overrides = {"remote_write_labels": "instance,job", "remote_write_learning_points": 20}
    with serve(**overrides) as served, served.client() as client:
        assert post(client, snappy(write_request([(NODE, seconds(3))]))).status_code == 204
        info = client.get("/v1/streams/db1:9100,node").json()
        assert info["learning_points"] == 20 and info["model"] is None


def test_keys_formats_and_malformed_bodies_answer_problems(serve: Any) -> None:
    body = snappy(write_request([(NODE, seconds(2))]))
    with serve(remote_write_max_decompressed_bytes=2048) as served, served.client() as client:
        anonymous = httpx.post(f"{served.url}/api/v1/write", content=body, headers=HEADERS)
        assert anonymous.status_code == 401
        with served.client(served.read_key) as reader:
            assert post(reader, body).status_code == 403
        cases = {
            400: [b"", b"\x10garbage!", snappy(b"\x0a\x05ab")],
            413: [snappy(b"\x00" * 4096), varint(1 << 30) + b"\x00"],
            415: [],
        }
        for status, bodies in cases.items():
            for bad in bodies:
                answer = post(client, bad)
                assert answer.status_code == status, (bad[:20], answer.text)
                assert answer.headers["content-type"] == "application/problem+json"
        gzip = post(client, body, **{"Content-Encoding": "gzip"})
        assert gzip.status_code == 415 and gzip.headers["content-type"] == "application/problem+json"
        too_big = post(client, b"\x00" * (served.settings.max_body_bytes + 1))
        assert too_big.status_code == 413
        assert client.get("/v1/streams").json()["streams"] == []


def test_stream_metrics_are_bounded(serve: Any) -> None:
    overrides = {"stream_metrics": True, "stream_metrics_max": 1, "remote_write_learning_points": 20}
    with serve(**overrides) as served, served.client() as client:
        values = [(START_MS + 1000 * i, float(i % 5)) for i in range(40)]
        assert post(client, snappy(write_request([(DISK, values), (NODE, seconds(3))]))).status_code == 204
        metrics = client.get("/metrics").text
        assert 'tswatch_stream_alarm_open{stream="disk_used,db1:9100"} 0.0' in metrics
        assert 'tswatch_stream_score{stream="disk_used,db1:9100"}' in metrics  # scoring after 20 points
        assert "node_load1" not in metrics.split("tswatch_stream_score")[1]
        assert "tswatch_stream_metrics_omitted 1.0" in metrics


@pytest.mark.sqlite_only
def test_storage_failure_is_a_503_and_the_retry_stores_everything(serve: Any) -> None:
    with serve() as served, served.client() as client:
        assert post(client, snappy(write_request([(NODE, seconds(3))]))).status_code == 204
        database_file = served.settings.models_dir / "registry.db"
        with sqlite3.connect(database_file) as connection:
            connection.execute("ALTER TABLE stream_points RENAME TO stream_points_away")
        body = snappy(write_request([(NODE, seconds(3, start=3))]))
        failed = post(client, body)
        assert failed.status_code == 503, failed.text
        assert failed.headers["content-type"] == "application/problem+json"
        with sqlite3.connect(database_file) as connection:
            connection.execute("ALTER TABLE stream_points_away RENAME TO stream_points")
        assert post(client, body).status_code == 204
        assert len(served.stored("node_load1,db1:9100")) == 6


def test_a_stream_that_refuses_its_samples_does_not_hold_back_the_others(
    serve: Any, models_dir: Path
) -> None:
    with serve(models_dir=models_dir) as served, served.client(served.admin_key) as admin:
        node = "node_load1,db1:9100"
        assert admin.put(f"/v1/streams/{node}", json={"model": "tiny", "version": 2}).status_code == 201
        assert admin.delete("/v1/models/tiny/versions/2").status_code == 204  # the stream cannot score now
        with served.client() as client:
            body = snappy(write_request([(NODE, seconds(3)), (DISK, seconds(3))]))
            assert post(client, body).status_code == 204
            assert client.get("/v1/streams/disk_used,db1:9100").json()["point_count"] == 3
            assert client.get(f"/v1/streams/{node}").json()["point_count"] == 0
            metrics = client.get("/metrics").text
            assert 'tswatch_remote_write_samples_total{outcome="refused"} 3.0' in metrics
            assert 'tswatch_remote_write_samples_total{outcome="stored"} 3.0' in metrics
