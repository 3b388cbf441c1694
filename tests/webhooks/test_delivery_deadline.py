"""One outbound webhook attempt ends at TSWATCH_WEBHOOK_TIMEOUT_SECONDS whatever the receiver does, and slow
endpoints cannot starve healthy ones. A real `tswatch serve` process sends to real receivers on 127.0.0.1: raw TCP
servers that answer a status line and then trickle one header line at a time, never finishing the headers (each
line resets a per-phase read timeout, so only a total deadline ends the attempt)."""

from __future__ import annotations

import select
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from .helpers import AUTH, TINY_STREAM, Receiver, server_env, spiked_points, wait_until

pytestmark = pytest.mark.slow

MARGIN = 0.75  # seconds an attempt may outlive its deadline (a loaded 2-core machine)


@dataclass
class Connection:
    accepted: float
    closed: float | None = None
    closed_by_client: bool = False

    @property
    def held(self) -> float:
        return (time.monotonic() if self.closed is None else self.closed) - self.accepted


class TricklingReceiver:
    """Accepts connections on 127.0.0.1 and, on each, sends `HTTP/1.1 200 OK` and then one header line every
    `interval` seconds until the client hangs up, `duration` passes or the receiver stops."""

    def __init__(self, interval: float = 0.5, duration: float = 30.0) -> None:
        self.interval = interval
        self.duration = duration
        self.connections: list[Connection] = []
        self.peak_open = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}/hook"

    def start(self) -> TricklingReceiver:
        self._spawn(self._accept_loop)
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in list(self._threads):
            thread.join(5)
        self._listener.close()

    def open_count(self) -> int:
        with self._lock:
            return sum(item.closed is None for item in self.connections)

    def snapshot(self) -> list[Connection]:
        with self._lock:
            return list(self.connections)

    def _spawn(self, target: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _address = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            record = Connection(time.monotonic())
            with self._lock:
                self.connections.append(record)
                self.peak_open = max(self.peak_open, sum(item.closed is None for item in self.connections))
            self._spawn(self._trickle, conn, record)

    def _trickle(self, conn: socket.socket, record: Connection) -> None:
        with conn:
            lines = 0
            until = time.monotonic() + self.duration
            while not self._stop.is_set() and time.monotonic() < until:
                readable, _, _ = select.select([conn], [], [], self.interval)
                if readable:  # the request (ignored), or the client hanging up
                    try:
                        data = conn.recv(65536)
                    except OSError:
                        data = b""
                    if not data:
                        record.closed_by_client = True
                        break
                    continue
                line = b"HTTP/1.1 200 OK\r\n" if lines == 0 else f"X-Trickle-{lines}: {lines}\r\n".encode()
                try:
                    conn.sendall(line)
                except OSError:
                    record.closed_by_client = True
                    break
                lines += 1
        with self._lock:
            record.closed = time.monotonic()


@pytest.fixture
def tricklers() -> Iterator[Callable[[], TricklingReceiver]]:
    started: list[TricklingReceiver] = []

    def make() -> TricklingReceiver:
        receiver = TricklingReceiver().start()
        started.append(receiver)
        return receiver

    yield make
    for receiver in started:
        receiver.stop()


@pytest.fixture
def healthy_receiver() -> Iterator[Receiver]:
    receiver = Receiver().start()
    yield receiver
    receiver.stop()


def register(client: httpx.Client, url: str) -> dict[str, Any]:
    reply = client.post("/v1/webhooks", json={"url": url, "events": ["anomaly.opened", "anomaly.resolved"]})
    assert reply.status_code == 201, reply.text
    return dict(reply.json())


def ping(client: httpx.Client, endpoint_id: str) -> dict[str, Any]:
    reply = client.post(f"/v1/webhooks/{endpoint_id}/test")
    assert reply.status_code == 202, reply.text
    return dict(reply.json())


def test_attempt_ends_at_total_deadline_and_is_logged_as_timeout(
    models_dir: Path, server_factory: Callable[..., Any], tricklers: Callable[[], TricklingReceiver]
) -> None:
    deadline = 1.0
    server = server_factory(models_dir, **server_env(TSWATCH_WEBHOOK_TIMEOUT_SECONDS=f"{deadline:g}"))
    slow = tricklers()
    with server.client() as client:
        client.headers.update(AUTH)
        endpoint = register(client, slow.url)
        queued = ping(client, endpoint["id"])

        def finished() -> dict[str, Any] | None:
            log = client.get(f"/v1/webhooks/{endpoint['id']}/deliveries").json()
            entry = next(item for item in log if item["id"] == queued["delivery_id"])
            return dict(entry) if entry["status"] != "pending" else None

        # Three attempts (the schedule 0, 0.2, 0.4 s), each ended by the deadline: well before the 30 s trickle.
        entry = wait_until(finished, timeout=3 * (deadline + MARGIN) + 4.0)
    assert entry["status"] == "failed" and len(entry["attempts"]) == 3
    for attempt in entry["attempts"]:
        assert attempt["success"] is False and attempt["status_code"] is None
        assert attempt["error"] == "timed out after 1 s"
        assert deadline * 1000 * 0.9 <= attempt["latency_ms"] <= (deadline + MARGIN) * 1000
    connections = slow.snapshot()
    assert len(connections) == 3
    for connection in connections:
        assert connection.closed_by_client and connection.held <= deadline + MARGIN
    assert "Traceback" not in server.log()


def test_trickling_endpoints_do_not_starve_a_healthy_one(
    models_dir: Path,
    server_factory: Callable[..., Any],
    tricklers: Callable[[], TricklingReceiver],
    healthy_receiver: Receiver,
) -> None:
    """Eight stalled endpoints, each with more queued messages than its in-flight cap (2, the default): a healthy
    endpoint's alert still goes out at once. The deadline (5 s) is longer than the promptness bound, so only
    fairness can pass this, not the deadline freeing slots."""
    server = server_factory(models_dir, **server_env(TSWATCH_WEBHOOK_TIMEOUT_SECONDS="5"))
    slow = [tricklers() for _ in range(8)]
    with server.client() as client:
        client.headers.update(AUTH)
        for receiver in slow:
            endpoint = register(client, receiver.url)
            for _ in range(3):
                ping(client, endpoint["id"])
        wait_until(lambda: sum(receiver.open_count() for receiver in slow) >= 8, timeout=5)

        healthy = register(client, healthy_receiver.url)
        healthy_receiver.secret = healthy["secret"]
        stream = client.put("/v1/streams/s1", json=TINY_STREAM)
        assert stream.status_code == 201, stream.text
        sent = time.time()
        appended = client.post("/v1/streams/s1/points", json={"points": spiked_points()})
        assert appended.status_code == 200, appended.text
        assert any(item["kind"] == "opened" for item in appended.json()["events"])
        got = healthy_receiver.wait_for(lambda seen: len(seen) >= 1, timeout=2.5)
        alert = next(item for item in got if item.payload["type"] == "anomaly.opened")  # resolved: concurrent
        assert alert.verified_id is not None and alert.at - sent < 2.5
        assert all(receiver.peak_open == 2 for receiver in slow)
    assert "Traceback" not in server.log()
