"""Appends to one stream through two `tswatch serve` replicas over one PostgreSQL database: serialised across
replicas (every point stored exactly once, each request's points together and in order), scored exactly as one
replica scores them, and durable through a `kill -9` of a replica (acknowledged = stored)."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from .helpers import AUTH, hourly_points, replica_env, stored_points

pytestmark = [pytest.mark.postgres_only, pytest.mark.slow]

SELF_LEARNING = {"sensitivity": 0.9, "learning_points": 20}


@dataclass
class Ledger:
    """What the clients sent and what the replicas acknowledged, request by request."""

    acked: list[tuple[list[dict[str, Any]], list[int]]] = field(default_factory=list)  # (points, indices)
    unacked: list[list[dict[str, Any]]] = field(default_factory=list)
    refused: list[tuple[int, str]] = field(default_factory=list)  # non-200 answers (status, body)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def send(self, client: httpx.Client, stream: str, points: list[dict[str, Any]]) -> bool:
        try:
            reply = client.post(f"/v1/streams/{stream}/points", json={"points": points})
        except httpx.HTTPError:
            with self.lock:
                self.unacked.append(points)
            return False
        with self.lock:
            if reply.status_code != 200:
                self.refused.append((reply.status_code, reply.text[:300]))
                self.unacked.append(points)
                return False
            self.acked.append((points, [point["index"] for point in reply.json()["points"]]))
        return True


def open_clients(*replicas: Any) -> list[httpx.Client]:
    clients = [replica.client(timeout=60) for replica in replicas]
    for client in clients:
        client.headers.update(AUTH)
    return clients


def check_ledger(database_url: str, stream: str, ledger: Ledger) -> int:
    """Every acknowledged point is stored at the position it was acknowledged with, every request's points
    together and in order; an unacknowledged request is stored whole or not at all; nothing else is stored and
    nothing twice. Returns how many unacknowledged requests were stored."""
    stored = stored_points(database_url, stream)
    assert [point.position for point in stored] == list(range(len(stored))), "positions are 0..n-1"
    by_position = {point.position: point for point in stored}
    for points, indices in ledger.acked:
        assert indices == list(range(indices[0], indices[0] + len(points))), (
            "a request's points stay together"
        )
        for point, index in zip(points, indices, strict=True):
            row = by_position.pop(index)
            assert (row.timestamp, row.value) == (point["timestamp"], point["value"]), index
    leftovers = {(row.timestamp, row.value) for row in by_position.values()}
    stored_unacked = 0
    for points in ledger.unacked:
        keys = {(point["timestamp"], point["value"]) for point in points}
        if keys & leftovers:
            assert keys <= leftovers, "an unacknowledged request is stored whole or not at all"
            leftovers -= keys
            stored_unacked += 1
    assert not leftovers, f"stored but never sent: {sorted(leftovers)[:5]}"
    assert len({row.timestamp for row in stored}) == len(stored), "no point stored twice"
    return stored_unacked


def test_concurrent_appends_to_one_stream_through_two_replicas(
    models_dir: Path, server_factory: Callable[..., Any], database_url: str
) -> None:
    replicas = [server_factory(models_dir, **replica_env()) for _ in range(2)]
    clients = open_clients(*replicas)
    assert clients[0].put("/v1/streams/shared", json=SELF_LEARNING).status_code == 201
    ledger = Ledger()
    writers, batches, size = 4, 12, 5
    everything = hourly_points(0, writers * batches * size)

    def write(writer: int) -> None:
        client = clients[writer % 2]  # two writers through each replica
        for batch in range(batches):
            first = (batch * writers + writer) * size  # writers interleave in time: batch-sized slices
            ledger.send(client, "shared", everything[first : first + size])

    threads = [threading.Thread(target=write, args=(writer,)) for writer in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not ledger.refused, f"appends refused instead of serialised: {ledger.refused[:3]}"
    assert not ledger.unacked
    assert check_ledger(database_url, "shared", ledger) == 0
    assert len(stored_points(database_url, "shared")) == len(everything)
    for client in clients:
        assert client.get("/v1/streams/shared").json()["point_count"] == len(everything)
        client.close()
    for replica in replicas:
        assert "Traceback" not in replica.log()


def test_alternating_replicas_score_like_one(
    models_dir: Path, server_factory: Callable[..., Any], database_url: str
) -> None:
    """Batches alternate between the replicas (each holds the stream's state in memory between its turns);
    the stored scores equal those of the same batches sent to one replica, bit for bit."""
    replicas = [server_factory(models_dir, **replica_env()) for _ in range(2)]
    clients = open_clients(*replicas)
    config = {"model": "tiny", "sensitivity": 0.9, "learning_points": 20}
    for stream in ("alternating", "control", "alternating-self", "control-self"):
        body = config if "self" not in stream else SELF_LEARNING
        assert clients[0].put(f"/v1/streams/{stream}", json=body).status_code == 201
    points = hourly_points(0, 160, seed=3, spike_at=120)
    for number, first in enumerate(range(0, len(points), 10)):
        batch = {"points": points[first : first + 10]}
        for stream, client in (
            ("alternating", clients[number % 2]),
            ("alternating-self", clients[number % 2]),
            ("control", clients[0]),
            ("control-self", clients[0]),
        ):
            reply = client.post(f"/v1/streams/{stream}/points", json=batch)
            assert reply.status_code == 200, reply.text
    for kind in ("", "-self"):
        alternating = stored_points(database_url, f"alternating{kind}")
        control = stored_points(database_url, f"control{kind}")
        assert len(alternating) == len(points)
        assert [(p.score, p.expected) for p in alternating] == [(p.score, p.expected) for p in control]
        assert any(p.score is not None for p in control)
    anomalies = [client.get("/v1/streams/alternating/anomalies").json() for client in clients]
    assert anomalies[0] == anomalies[1] == clients[0].get("/v1/streams/control/anomalies").json()
    for client in clients:
        client.close()


def test_kill_9_of_a_replica_during_appends(
    models_dir: Path, server_factory: Callable[..., Any], database_url: str
) -> None:
    """Writers alternate between the replicas; A is killed mid-run and restarted. Every acknowledged point is
    stored; a request cut off by the kill is stored whole or not at all (never retried, so never twice)."""
    victim, survivor = (server_factory(models_dir, **replica_env()) for _ in range(2))
    replicas = [victim, survivor]
    setup = open_clients(survivor)[0]
    streams = [f"kill-{number}" for number in range(4)]
    for stream in streams:
        assert setup.put(f"/v1/streams/{stream}", json=SELF_LEARNING).status_code == 201
    ledgers = {stream: Ledger() for stream in streams}
    stop = threading.Event()
    size = 5

    def write(stream: str) -> None:
        ledger, batch = ledgers[stream], 0
        while not stop.is_set() and batch < 400:
            replica = replicas[batch % 2]
            with replica.client(timeout=60) as client:
                client.headers.update(AUTH)
                ledger.send(client, stream, hourly_points(batch * size, size))
            batch += 1

    threads = [threading.Thread(target=write, args=(stream,)) for stream in streams]
    for thread in threads:
        thread.start()

    def acked() -> int:
        return sum(len(ledger.acked) for ledger in ledgers.values())

    deadline = time.monotonic() + 120
    while acked() < 40:
        assert time.monotonic() < deadline, "no appends acknowledged"
        time.sleep(0.05)
    victim.stop(signal.SIGKILL)
    before_restart = acked()
    replicas[0] = server_factory(models_dir, **replica_env())  # the writers use it as soon as it is ready
    while acked() < before_restart + 40:
        assert time.monotonic() < deadline, "appends stopped after the restart"
        time.sleep(0.05)
    stop.set()
    for thread in threads:
        thread.join()

    assert sum(len(ledger.unacked) for ledger in ledgers.values()) >= 1, "the kill cut off no request"
    for stream, ledger in ledgers.items():
        assert not ledger.refused, ledger.refused[:3]
        check_ledger(database_url, stream, ledger)
        stored = len(stored_points(database_url, stream))
        assert setup.get(f"/v1/streams/{stream}").json()["point_count"] == stored
    setup.close()
    assert "Traceback" not in survivor.log()
