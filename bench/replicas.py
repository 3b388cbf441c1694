"""Replicas: two `tswatch serve` processes over one PostgreSQL database, one of them `kill -9`'d mid-run.

Starts a throw-away PostgreSQL cluster on 127.0.0.1 (tests/postgres.py: Debian's `postgresql` binaries), two
replicas (each with its own models folder: nothing shared but the database) and a loopback webhook receiver
subscribed to alarm events. `--clients` threads append batches of `--batch` points to `--streams` self-learning
streams (hourly daily cycle + noise + spikes), each batch to the replica after the one that took the previous
batch. After a third of the points replica A is killed with SIGKILL and restarted `--down` seconds later; a
request cut off by the kill is resent only when the stream does not show it (its `point_count`), which is the
client protocol for an unanswered append. Then:

- points: acknowledged (answered, or found stored after the cut) vs stored, and no point stored twice;
- scores: the same readings appended to one replica on a fresh database (the control) give identical scores and
  expected values, bit for bit, position by position;
- alarms: every anomaly event in the outbox reached the receiver; counted by webhook-id (once each, except an
  attempt cut off by the kill, which is repeated with the same webhook-id after the lease).

    python bench/replicas.py [--streams 24] [--points 240] [--batch 10] [--clients 6] [--down 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # tests/ is not an installed package

from app.storage.database import Database  # noqa: E402
from app.storage.tables.streams import StreamPointRow  # noqa: E402
from app.storage.tables.webhooks import DeliveryRow, MessageRow  # noqa: E402
from tests.postgres import PostgresCluster, find_binaries, missing_reason  # noqa: E402
from tests.replicas.helpers import HookReceiver, hourly_points  # noqa: E402

ADMIN_KEY = "bench-replicas-admin-key-0123456789"
AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}
STREAM = {"sensitivity": 0.9, "learning_points": 50}
ALARMS = ("anomaly.opened", "anomaly.resolved")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Replica:
    process: subprocess.Popen[bytes]
    url: str

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()


def start_replica(database_url: str, models_dir: Path, log: Path) -> Replica:
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("TSWATCH_")}
    env.update(
        TSWATCH_DATABASE_URL=database_url,
        TSWATCH_MODELS_DIR=str(models_dir),
        TSWATCH_ADMIN_KEY=ADMIN_KEY,
        TSWATCH_WEBHOOK_ALLOW_CIDRS="127.0.0.0/8",
        TSWATCH_WEBHOOK_RETRY_SCHEDULE="0,0.5,1,2,4",
        TSWATCH_WEBHOOK_TIMEOUT_SECONDS="2",
        TSWATCH_TORCH_THREADS="1",
    )
    command = [sys.executable, "-m", "app.cli.main", "serve", "--host", "127.0.0.1", "--port", str(port)]
    with open(log, "ab") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
    replica = Replica(process, f"http://127.0.0.1:{port}")
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"replica exited with {process.returncode}; see {log}")
        try:
            if httpx.get(f"{replica.url}/readyz", timeout=2).status_code == 200:
                return replica
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    replica.kill()
    raise RuntimeError(f"replica not ready after 180 s; see {log}")


def series(stream: int, points: int) -> list[dict[str, Any]]:
    """A stream's readings: hourly cycle + noise, with a spike two thirds in (an alarm to announce)."""
    return hourly_points(0, points, seed=stream, spike_at=(2 * points) // 3 + stream % 7)


@dataclass
class Tally:
    requests: int = 0
    acknowledged: int = 0  # points answered 200
    cut: int = 0  # requests with no answer (connection refused or reset: the replica died or was down)
    found_stored: int = 0  # points of a cut request that the stream showed as stored
    resent: int = 0  # cut requests resent because the stream did not show them
    refused: Counter[int] = field(default_factory=Counter)  # other answers, by status
    latencies: list[float] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class Cluster:
    """The replicas' URLs, swapped when one is restarted."""

    def __init__(self, replicas: list[Replica]) -> None:
        self.replicas = replicas
        self.lock = threading.Lock()

    def url(self, index: int) -> str:
        with self.lock:
            return self.replicas[index % len(self.replicas)].url


def point_count(cluster: Cluster, turn: int, stream: str) -> int:
    """The stream's stored point count, from whichever replica answers."""
    for offset in range(10):
        try:
            with httpx.Client(base_url=cluster.url(turn + offset), headers=AUTH, timeout=30) as client:
                reply = client.get(f"/v1/streams/{stream}")
            if reply.status_code == 200:
                return int(reply.json()["point_count"])
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError(f"no replica answers for {stream}")


def feed(cluster: Cluster, streams: list[int], points: int, batch: int, tally: Tally) -> None:
    """Append every stream's readings batch by batch, rotating over the replicas; a cut request is resent only
    when the stream does not show it."""
    turn = 0
    for first in range(0, points, batch):
        for stream in streams:
            name, body = f"s{stream}", {"points": series(stream, points)[first : first + batch]}
            while True:
                turn += 1
                try:
                    started = time.perf_counter()
                    with httpx.Client(base_url=cluster.url(turn), headers=AUTH, timeout=60) as client:
                        reply = client.post(f"/v1/streams/{name}/points", json=body)
                    latency = time.perf_counter() - started
                except httpx.HTTPError:
                    with tally.lock:
                        tally.requests += 1
                        tally.cut += 1
                    stored = point_count(cluster, turn + 1, name)
                    if stored >= first + len(body["points"]):
                        with tally.lock:
                            tally.found_stored += len(body["points"])
                        break
                    with tally.lock:
                        tally.resent += 1
                    continue
                with tally.lock:
                    tally.requests += 1
                    if reply.status_code == 200:
                        tally.acknowledged += len(reply.json()["points"])
                        tally.latencies.append(latency)
                    else:
                        tally.refused[reply.status_code] += 1
                if reply.status_code == 200:
                    break
                time.sleep(0.1)


def stored_scores(
    database_url: str,
) -> dict[str, list[tuple[int, str, float | None, float | None, float | None]]]:
    database = Database(database_url)
    try:
        with database.session() as session:
            rows = session.execute(
                select(
                    StreamPointRow.stream_id,
                    StreamPointRow.position,
                    StreamPointRow.timestamp,
                    StreamPointRow.value,
                    StreamPointRow.score,
                    StreamPointRow.expected,
                ).order_by(StreamPointRow.stream_id, StreamPointRow.position)
            ).all()
    finally:
        database.dispose()
    out: dict[str, list[tuple[int, str, float | None, float | None, float | None]]] = {}
    for stream, position, stamp, value, score, expected in rows:
        out.setdefault(stream, []).append((position, stamp.isoformat(), value, score, expected))
    return out


def outbox_alarms(database_url: str) -> tuple[set[str], Counter[str]]:
    """Ids of the alarm messages in the outbox, and their deliveries by status."""
    database = Database(database_url)
    try:
        with database.session() as session:
            ids = set(session.scalars(select(MessageRow.id).where(MessageRow.event_type.in_(ALARMS))))
            statuses = Counter(
                session.scalars(
                    select(DeliveryRow.status)
                    .join(MessageRow, MessageRow.id == DeliveryRow.message_id)
                    .where(MessageRow.event_type.in_(ALARMS))
                )
            )
    finally:
        database.dispose()
    return ids, statuses


def run_load(
    cluster: Cluster, args: argparse.Namespace, restart: Any, tally: Tally
) -> tuple[float, float | None, float | None]:
    """Feed every stream from `--clients` threads; kill replica A after a third of the points and restart it
    `--down` s later. Returns (elapsed s, kill time, restart-ready time) in s from the start."""
    owned = [list(range(args.streams))[index :: args.clients] for index in range(args.clients)]
    threads = [
        threading.Thread(target=feed, args=(cluster, streams, args.points, args.batch, tally))
        for streams in owned
    ]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    total, killed_at, back_at = args.streams * args.points, None, None
    while any(thread.is_alive() for thread in threads):
        with tally.lock:
            done = tally.acknowledged + tally.found_stored
        if killed_at is None and done >= total / 3:
            cluster.replicas[0].kill()
            killed_at = time.monotonic() - started
            time.sleep(args.down)
            replacement = restart()
            with cluster.lock:
                cluster.replicas[0] = replacement
            back_at = time.monotonic() - started
        time.sleep(0.05)
    for thread in threads:
        thread.join()
    return time.monotonic() - started, killed_at, back_at


def run_control(url: str, args: argparse.Namespace) -> None:
    """The same readings through one replica, one stream after another, in batches of 100."""
    with httpx.Client(base_url=url, headers=AUTH, timeout=120) as client:
        for stream in range(args.streams):
            assert client.put(f"/v1/streams/s{stream}", json=STREAM).status_code == 201
            readings = series(stream, args.points)
            for first in range(0, args.points, 100):
                reply = client.post(
                    f"/v1/streams/s{stream}/points", json={"points": readings[first : first + 100]}
                )
                reply.raise_for_status()


def wait_delivered(
    database_url: str, receiver: HookReceiver, timeout: float = 120.0
) -> tuple[set[str], Counter[str]]:
    deadline = time.monotonic() + timeout
    while True:
        ids, statuses = outbox_alarms(database_url)
        if (
            set(statuses) <= {"succeeded", "failed"} and ids <= set(receiver.counts())
        ) or time.monotonic() > deadline:
            time.sleep(1.0)  # a late repeat would arrive by now
            return outbox_alarms(database_url)
        time.sleep(0.2)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--streams", type=int, default=24)
    parser.add_argument("--points", type=int, default=240)
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--clients", type=int, default=6)
    parser.add_argument("--down", type=float, default=3.0, help="seconds replica A stays dead")
    args = parser.parse_args()
    binaries = find_binaries()
    if binaries is None:
        sys.exit(missing_reason())

    root = Path(tempfile.mkdtemp(prefix="tswatch-bench-replicas-"))
    pg_root = Path(tempfile.mkdtemp(prefix="tswatch-bench-pg-"))
    cluster_pg = PostgresCluster.start(pg_root, binaries)
    replicas: list[Replica] = []
    receiver = HookReceiver().start()
    try:
        url = cluster_pg.url(cluster_pg.create_database())
        control_url = cluster_pg.url(cluster_pg.create_database())
        log = root / "replicas.log"
        print(f"PostgreSQL on 127.0.0.1:{cluster_pg.port}; replica logs in {log}")

        def restart() -> Replica:
            replica = start_replica(url, root / "models-a", log)
            replicas.append(replica)
            return replica

        replicas += [start_replica(url, root / "models-a", log), start_replica(url, root / "models-b", log)]
        cluster = Cluster(list(replicas))
        with httpx.Client(base_url=replicas[1].url, headers=AUTH, timeout=30) as client:
            hook = client.post("/v1/webhooks", json={"url": receiver.url, "events": list(ALARMS)})
            hook.raise_for_status()
            receiver.secret = hook.json()["secret"]
            for stream in range(args.streams):
                assert client.put(f"/v1/streams/s{stream}", json=STREAM).status_code == 201

        tally = Tally()
        elapsed, killed_at, back_at = run_load(cluster, args, restart, tally)
        ids, statuses = wait_delivered(url, receiver)
        stored = stored_scores(url)

        control = start_replica(control_url, root / "models-control", log)
        replicas.append(control)
        run_control(control.url, args)
        expected = stored_scores(control_url)
    finally:
        for replica in replicas:
            replica.stop()
        receiver.stop()
        cluster_pg.stop()
        shutil.rmtree(pg_root, ignore_errors=True)
        shutil.rmtree(root, ignore_errors=True)

    sent = args.streams * args.points
    n_stored = sum(len(rows) for rows in stored.values())
    duplicated = sum(len(rows) - len({row[1] for row in rows}) for rows in stored.values())
    same_readings = all(
        [row[1:3] for row in stored.get(name, [])] == [row[1:3] for row in rows]
        for name, rows in expected.items()
    )
    mismatched = [
        name
        for name, rows in expected.items()
        if [row[3:] for row in stored.get(name, [])] != [row[3:] for row in rows]
    ]
    counts = receiver.counts()
    alarm_hits = {key: count for key, count in counts.items() if key in ids}
    missing = ids - set(alarm_hits)
    repeats = sum(count - 1 for count in alarm_hits.values())

    print()
    print(
        f"{args.streams} streams x {args.points} points, batches of {args.batch}, {args.clients} clients, 2 replicas"
    )
    print(
        f"run {elapsed:.1f} s; replica A killed at {killed_at or float('nan'):.1f} s, back at {back_at or float('nan'):.1f} s"
    )
    rows = [
        ("points sent", f"{sent}"),
        ("points acknowledged (200)", f"{tally.acknowledged}"),
        ("points of cut requests found stored", f"{tally.found_stored}"),
        ("points stored", f"{n_stored}"),
        ("points stored twice", f"{duplicated}"),
        ("requests / cut by the kill / resent", f"{tally.requests} / {tally.cut} / {tally.resent}"),
        ("other refusals", ", ".join(f"{k}: {v}" for k, v in sorted(tally.refused.items())) or "none"),
        (
            "append latency p50 / p99",
            f"{percentile(tally.latencies, 0.5) * 1000:.0f} / {percentile(tally.latencies, 0.99) * 1000:.0f} ms",
        ),
        ("readings identical to control", "yes" if same_readings else "NO"),
        (
            "scores identical to control",
            "yes" if not mismatched else f"NO ({len(mismatched)} streams differ)",
        ),
        ("alarm events in the outbox", f"{len(ids)} ({dict(statuses)})"),
        ("delivered (distinct webhook-ids)", f"{len(alarm_hits)}"),
        ("never delivered", f"{len(missing)}"),
        ("repeated deliveries (same webhook-id)", f"{repeats}"),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")
    ok = (
        n_stored == sent == tally.acknowledged + tally.found_stored
        and duplicated == 0
        and same_readings
        and not mismatched
        and not missing
    )
    print("\nOK" if ok else "\nFAILED")
    if not ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
