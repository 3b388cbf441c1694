"""Webhook test helpers: a real HTTP receiver on 127.0.0.1 that verifies Standard Webhooks signatures, and
hourly stream data with a spike (opens an alarm on a stream configured with `TINY_STREAM`)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np

from app.webhooks.signing import SignatureError, verify

ADMIN_KEY = "webhook-tests-admin-key-0123456789"
AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}
FAST_SCHEDULE = "0,0.2,0.4"
START = datetime(2024, 1, 1)
LEARNING_POINTS = 20  # the shortest learning period: such a stream scores from its 21st point on
# PUT body. Sensitivity 0.9 (false-alarm rate 5%): a young stream judges a break of its value range by how often
# it broke it so far, which a few dozen readings cannot show to be rarer than about 1 in 60.
TINY_STREAM = {"model": "tiny", "sensitivity": 0.9, "learning_points": LEARNING_POINTS}

Behaviour = Callable[[int, str], tuple[int, dict[str, str]]]  # (request number, path) -> (status, headers)


def server_env(**extra: str) -> dict[str, str]:
    return {
        "TSWATCH_ADMIN_KEY": ADMIN_KEY,
        "TSWATCH_WEBHOOK_ALLOW_CIDRS": "127.0.0.0/8",
        "TSWATCH_WEBHOOK_RETRY_SCHEDULE": FAST_SCHEDULE,
        "TSWATCH_WEBHOOK_TIMEOUT_SECONDS": "2",
        **extra,
    }


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float
    status: int
    verified_id: str | None  # the webhook-id when the signature verified with the receiver's secret

    @property
    def payload(self) -> dict[str, Any]:
        return json.loads(self.body)


@dataclass
class Receiver:
    behaviour: Behaviour = field(default=lambda n, path: (200, {}))
    secret: str | None = None
    received: list[Received] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None

    def start(self, port: int = 0) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                headers = {name.lower(): value for name, value in self.headers.items()}
                with receiver._lock:
                    status, extra = receiver.behaviour(len(receiver.received), self.path)
                    verified = receiver._verify(headers, body)
                    receiver.received.append(
                        Received(self.path, headers, body, time.time(), status, verified)
                    )
                self.send_response(status)
                for name, value in extra.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def _verify(self, headers: dict[str, str], body: bytes) -> str | None:
        if self.secret is None:
            return None
        try:
            return verify([self.secret], headers, body)
        except SignatureError:
            return None

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def snapshot(self) -> list[Received]:
        with self._lock:
            return list(self.received)

    def wait_for(self, predicate: Callable[[list[Received]], bool], timeout: float = 15.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            seen = self.snapshot()
            if predicate(seen):
                return seen
            time.sleep(0.05)
        raise AssertionError(
            f"receiver condition not met within {timeout} s; got {len(self.snapshot())} requests"
        )


def spiked_points(
    count: int = 50, spike_at: int = 40, seed: int = 0, offset: int = 0
) -> list[dict[str, Any]]:
    """Hourly points (daily cycle) with a +60 spike at `spike_at`, far beyond every earlier value: a
    `TINY_STREAM` stream learns from the first 20 points and opens exactly one alarm, at the spike (for the seeds
    the tests use; seed 1 also breaks the short learned range once, at point 30). Keep `count` at 50 or less
    where a test counts alarms: from about the 51st reading on, so short a history still opens false ones."""
    rng = np.random.default_rng(seed)
    hours = np.arange(offset, offset + count)
    values = 10.0 + 3.0 * np.sin(2 * np.pi * hours / 24) + rng.normal(0, 0.3, count)
    if spike_at is not None and 0 <= spike_at < count:
        values[spike_at] += 60.0
    return [
        {"timestamp": (START + timedelta(hours=int(h))).isoformat() + "Z", "value": float(v)}
        for h, v in zip(hours, values, strict=True)
    ]


def wait_until(condition: Callable[[], Any], timeout: float = 15.0, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")
