"""Shared by the replica tests and `bench/replicas.py`: a loopback webhook receiver that counts deliveries by
webhook-id (and knows which requests were in flight when a replica died), hourly stream points, and the points a
PostgreSQL database stored for a stream."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
from sqlalchemy import select

from app.storage.database import Database
from app.storage.tables.streams import StreamPointRow
from app.webhooks.signing import SignatureError, verify

ADMIN_KEY = "replica-tests-admin-key-0123456789"
AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}
START = datetime(2024, 1, 1)


def replica_env(**extra: str) -> dict[str, str]:
    """Settings of every replica: an admin key, loopback webhooks, a short retry schedule and attempt timeout."""
    return {
        "TSWATCH_ADMIN_KEY": ADMIN_KEY,
        "TSWATCH_WEBHOOK_ALLOW_CIDRS": "127.0.0.0/8",
        "TSWATCH_WEBHOOK_RETRY_SCHEDULE": "0,0.2,0.4,0.8,1.6,3.2",
        "TSWATCH_WEBHOOK_TIMEOUT_SECONDS": "2",
        **extra,
    }


@dataclass(frozen=True)
class Hit:
    webhook_id: str | None  # None when the signature did not verify
    event_type: str
    stream: str | None
    started: float
    answered: bool  # the 2xx answer was written back (False: the sender went away first)


@dataclass
class HookReceiver:
    """A real HTTP receiver on 127.0.0.1. Every request is recorded with its verified webhook-id; `delay` holds
    each answer that long (attempts stay in flight, so a replica killed meanwhile dies mid-attempt)."""

    secret: str | None = None
    delay: float = 0.0
    hits: list[Hit] = field(default_factory=list)
    in_flight: Counter[str] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None

    def start(self) -> HookReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                headers = {name.lower(): value for name, value in self.headers.items()}
                webhook_id = receiver._verify(headers, body)
                key = webhook_id or "?"
                started = time.time()
                with receiver._lock:
                    receiver.in_flight[key] += 1
                answered = False
                try:
                    time.sleep(receiver.delay)
                    self.send_response(200)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    self.wfile.flush()
                    answered = True
                except OSError:
                    pass
                finally:
                    payload = json.loads(body)
                    data = payload.get("data") or {}
                    hit = Hit(webhook_id, payload.get("type", "?"), data.get("stream"), started, answered)
                    with receiver._lock:
                        receiver.in_flight[key] -= 1
                        receiver.hits.append(hit)

            def log_message(self, *_args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def _verify(self, headers: dict[str, str], body: bytes) -> str | None:
        if self.secret is None:
            return headers.get("webhook-id")
        try:
            return verify([self.secret], headers, body)
        except SignatureError:
            return None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}/hook"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def snapshot(self) -> list[Hit]:
        with self._lock:
            return list(self.hits)

    def pending_ids(self) -> set[str]:
        """Webhook-ids whose request is being answered right now."""
        with self._lock:
            return {key for key, count in self.in_flight.items() if count > 0}

    def counts(self) -> Counter[str | None]:
        return Counter(hit.webhook_id for hit in self.snapshot())

    def wait_for(self, predicate: Callable[[list[Hit]], bool], timeout: float = 30.0) -> list[Hit]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            seen = self.snapshot()
            if predicate(seen):
                return seen
            time.sleep(0.05)
        raise AssertionError(
            f"receiver condition not met within {timeout} s; got {len(self.snapshot())} hits"
        )


def hourly_points(start: int, count: int, seed: int = 0, spike_at: int | None = None) -> list[dict[str, Any]]:
    """Points `start .. start + count - 1` of one hourly series (daily cycle + noise, the same values whatever
    the slice), with a +60 spike at absolute position `spike_at`."""
    rng = np.random.default_rng(seed)
    total = start + count
    noise = rng.normal(0, 0.3, total)
    points = []
    for hour in range(start, total):
        value = 10.0 + 3.0 * np.sin(2 * np.pi * hour / 24) + noise[hour] + (60.0 if hour == spike_at else 0.0)
        points.append({"timestamp": (START + timedelta(hours=hour)).isoformat() + "Z", "value": float(value)})
    return points


@dataclass(frozen=True)
class StoredPoint:
    position: int
    timestamp: str
    value: float | None
    score: float | None
    expected: float | None


def stored_points(database_url: str, stream: str) -> list[StoredPoint]:
    """What the database holds for a stream, in position order (timestamps as the API writes them)."""
    database = Database(database_url)
    try:
        with database.session() as session:
            rows = session.scalars(
                select(StreamPointRow)
                .where(StreamPointRow.stream_id == stream)
                .order_by(StreamPointRow.position)
            ).all()
            return [
                StoredPoint(row.position, row.timestamp.isoformat() + "Z", row.value, row.score, row.expected)
                for row in rows
            ]
    finally:
        database.dispose()
