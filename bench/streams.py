"""Streams: per-point cost in process, and points/s ingested and scored through the API.

1. In process, one thread: the amortised CPU time (`time.process_time`, robust to a shared machine's load) of one
   reading through the one detector (`app.anomaly.detector.Detector`), hourly daily sine + noise:
   - self-learning: `Detector.update` folded over the points after its learning period (refits included);
   - model-bound: `score_reading(detector, ModelForecasts(model), ...)` (app/serving/model_forecasts.py) with a
     random-weight GRU (hidden 64 x 2 layers, calendar features) for window 32 vs 512, next to re-running the
     whole window per point. The model-bound column must stay flat in the window.
2. Through the API: trains a small hourly model (window 48, calendar features) into a temporary registry, starts
   `tswatch serve` on 127.0.0.1, and for model-bound streams, self-learning streams from creation (learning,
   first fit, scoring) and self-learning streams already scoring: creates `--streams` streams, fills each with
   its history, then `--clients` concurrent HTTP clients (asyncio + httpx, one keep-alive connection each) post
   batches of `--batch` points for `--duration` seconds. Each stream belongs to one client, so its batches stay
   in order. Reports acknowledged points/s, request latency, and the server's CPU time per point (from /proc).

3. The fleet table (`--fleet`, issue 15): 1,000 streams (model-bound and self-learning, already scoring),
   16 clients, batches of 1, 10 and 100 points, on SQLite and on PostgreSQL (a throwaway cluster, as the tests
   start one: tests/postgres.py); points/s and p50/p99 latency per row. `--quick`: 5 s per row.

    python bench/streams.py [--streams 50] [--batch 10] [--clients 16] [--duration 20] [--no-api]
    python bench/streams.py --fleet [--quick] [--backends sqlite,postgresql] [--batches 1,10,100]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import torch

from app.anomaly.detector import DEFAULT_LEARNING_POINTS, Detector
from app.forecasting.forecaster import Forecaster, ForecasterSpec
from app.forecasting.network import NetworkConfig
from app.forecasting.quantiles import DEFAULT_QUANTILES
from app.forecasting.scaling import Scaling
from app.serving.model_forecasts import ModelForecasts, score_reading

START = datetime(2024, 1, 1)
API_WINDOW = 48


# -------------------------------------------------------------------- in process
def forecaster(window: int) -> Forecaster:
    spec = ForecasterSpec(
        window=window,
        horizon=24,
        frequency="h",
        scaling=Scaling("instance", 0.0, 1.0, 1e-6),
        network=NetworkConfig("gru", 1, 64, 2, 24, len(DEFAULT_QUANTILES)),
        calendar_features=("hour_of_day", "day_of_week"),
    )
    return Forecaster.create(spec, seed=0)


def series(points: int, seed: int = 0, offset: int = 0) -> tuple[list[datetime], np.ndarray]:
    """Hourly daily sine + noise, starting `offset` hours after START."""
    rng = np.random.default_rng(seed)
    hours = np.arange(offset, offset + points)
    values = 10 + 3 * np.sin(2 * np.pi * hours / 24) + rng.normal(0, 0.3, points)
    return [START + timedelta(hours=int(h)) for h in hours], values


def stream_cost(model: Forecaster | None, measured: int) -> float:
    """Seconds per reading through `score_reading` once warm (model-bound, or self-learning when `model` is None).

    Warm = past the detector's learning period and, model-bound, the model's first window."""
    warm = DEFAULT_LEARNING_POINTS + (model.spec.window if model is not None else 0)
    detector = Detector()
    forecasts = ModelForecasts(model) if model is not None else None
    stamps, values = series(warm + measured)
    for stamp, value in zip(stamps[:warm], values[:warm], strict=True):
        score_reading(detector, forecasts, stamp, float(value))
    start = time.process_time()
    for stamp, value in zip(stamps[warm:], values[warm:], strict=True):
        score_reading(detector, forecasts, stamp, float(value))
    return (time.process_time() - start) / measured


def rerun_cost(model: Forecaster, repeats: int = 50) -> float:
    window = model.spec.window
    stamps, values = series(window)
    calendar = model.calendar(np.array(stamps, dtype="datetime64[ns]"))[None]
    start = time.process_time()
    for _ in range(repeats):
        model.predict(values[None], calendar)
    return (time.process_time() - start) / repeats


def in_process() -> None:
    torch.set_num_threads(1)
    print("In process, one thread: one reading through the detector (score_reading), amortised CPU time")
    print(f"{'stream':<34} | {'us/point':>9} | {'re-run window us/point':>22}")
    self_learning = min(stream_cost(None, 5000) for _ in range(3))  # 10 refits in each run
    print(f"{'self-learning (refits included)':<34} | {self_learning * 1e6:>9.0f} | {'':>22}")
    for window in (32, 512):
        model = forecaster(window)
        measured = 8 * window if window <= 64 else 2 * window
        stream_cost(model, window)  # warm-up
        stream = min(stream_cost(model, measured) for _ in range(3))
        rerun = rerun_cost(model)
        label = f"model-bound, GRU 64x2, window {window}"
        print(f"{label:<34} | {stream * 1e6:>9.0f} | {rerun * 1e6:>22.0f}")


# -------------------------------------------------------------------- through the API
def train(models_dir: Path, database_url: str | None = None) -> None:
    from app.registry.factory import open_registry
    from app.settings import Settings
    from app.training.config import TrainingConfig
    from app.training.data.prepared import prepare
    from app.training.pipeline import train_model

    stamps, values = series(3000)
    data = prepare(pd.DataFrame({"timestamp": stamps, "value": values}), min_length=API_WINDOW + 24)
    config = TrainingConfig(
        window=API_WINDOW, horizon=24, hidden=32, layers=2, epochs=2, max_batches_per_epoch=40
    )
    settings = Settings(models_dir=models_dir, database_url=database_url)
    train_model(data, "bench", open_registry(settings), config, alias="production", force=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(
    models_dir: Path, port: int, extra_env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("TSWATCH_")}
    env.update({"TSWATCH_MODELS_DIR": str(models_dir), "TSWATCH_TORCH_THREADS": "1", **(extra_env or {})})
    command = [sys.executable, "-m", "app.cli.main", "serve", "--host", "127.0.0.1", "--port", str(port)]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(300):
        if process.poll() is not None:
            raise SystemExit(f"server exited with {process.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit("server did not become ready")


def stop_server(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server; SIGKILL it if it has not exited within 30 s."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def batch_body(stream: int, offset: int, count: int) -> dict[str, list[dict[str, object]]]:
    stamps, values = series(count, seed=stream * 1_000_003 + offset, offset=offset)
    return {
        "points": [
            {"timestamp": stamp.isoformat() + "Z", "value": round(float(value), 6)}
            for stamp, value in zip(stamps, values, strict=True)
        ]
    }


# stream kinds measured through the API: PUT body, points of history posted before the timed load (the
# model-bound history covers both the model's window and the detector's learning period, so it is scoring)
KINDS: dict[str, tuple[dict[str, object], int]] = {
    "model-bound": ({"model": "bench"}, max(API_WINDOW, DEFAULT_LEARNING_POINTS)),
    "self-learning, from creation": ({}, 0),
    "self-learning, scoring": ({}, DEFAULT_LEARNING_POINTS),
}


async def drive(
    base: str,
    streams: int,
    batch: int,
    clients: int,
    duration: float,
    prefix: str = "b",
    kind: str = "model-bound",
    start: int | None = None,
) -> dict[str, float]:
    """Load for `duration` s; `start` (streams made by an earlier call): their next point, no setup."""
    timeout = httpx.Timeout(60.0)
    config, history = KINDS[kind]
    async with httpx.AsyncClient(base_url=base, timeout=timeout) as setup:
        for stream in range(streams if start is None else 0):
            reply = await setup.put(f"/v1/streams/{prefix}{stream}", json=config)
            assert reply.status_code in (200, 201), reply.text
            if history:
                reply = await setup.post(
                    f"/v1/streams/{prefix}{stream}/points", json=batch_body(stream, 0, history)
                )
                assert reply.status_code == 200, reply.text
    offsets = dict.fromkeys(range(streams), history if start is None else start)
    latencies: list[float] = []
    counts = {"points": 0, "scored": 0, "errors": 0}
    deadline = time.perf_counter() + duration

    async def worker(owned: list[int]) -> None:
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        async with httpx.AsyncClient(base_url=base, timeout=timeout, limits=limits) as client:
            turn = 0
            while time.perf_counter() < deadline:
                stream = owned[turn % len(owned)]
                turn += 1
                body = batch_body(stream, offsets[stream], batch)
                sent = time.perf_counter()
                reply = await client.post(f"/v1/streams/{prefix}{stream}/points", json=body)
                latencies.append(time.perf_counter() - sent)
                if reply.status_code != 200:
                    counts["errors"] += 1
                    continue
                points = reply.json()["points"]
                counts["points"] += len(points)
                counts["scored"] += sum(point["score"] is not None for point in points)
                offsets[stream] += batch

    groups = [list(range(client, streams, clients)) for client in range(min(clients, streams))]
    started = time.perf_counter()
    await asyncio.gather(*(worker(owned) for owned in groups))
    elapsed = time.perf_counter() - started
    lat = np.array(latencies) * 1e3
    return {
        "elapsed": elapsed,
        "requests": len(latencies),
        "points": counts["points"],
        "scored": counts["scored"],
        "errors": counts["errors"],
        "p50": float(np.percentile(lat, 50)),
        "p95": float(np.percentile(lat, 95)),
        "p99": float(np.percentile(lat, 99)),
    }


def through_api(streams: int, batch: int, clients: int, duration: float) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="tswatch-bench-streams-"))
    results: dict[str, tuple[dict[str, float], float, float]] = {}
    try:
        train(workdir / "models")
        port = free_port()
        server = start_server(workdir / "models", port)
        try:
            base = f"http://127.0.0.1:{port}"
            for number, kind in enumerate(KINDS):
                warm_up = f"warm-up-{number}-"
                asyncio.run(drive(base, min(streams, 4), batch, 2, 2.0, prefix=warm_up, kind=kind))
                cpu_before, client_before = cpu_seconds(server.pid), time.process_time()
                result = asyncio.run(drive(base, streams, batch, clients, duration, f"s{number}-", kind))
                server_cpu = cpu_seconds(server.pid) - cpu_before
                results[kind] = (result, server_cpu, time.process_time() - client_before)
        finally:
            stop_server(server)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(
        f"\nThrough the API: one `tswatch serve` (torch threads 1, SQLite) on 127.0.0.1; model-bound streams use "
        f"a trained GRU 32 x 2, window {API_WINDOW}, calendar; {streams} streams x batches of {batch} points, "
        f"{clients} clients, {duration:.0f} s per row, {os.cpu_count()} CPUs shared by server and client"
    )
    print(
        f"{'stream kind':<29} {'points/s':>9} {'scored/s':>9} {'req/s':>7} {'errors':>6} {'p50 ms':>7} "
        f"{'p95 ms':>7} {'p99 ms':>7} {'server CPU ms/pt':>16} {'client CPU ms/pt':>16}"
    )
    for kind, (result, server_cpu, client_cpu) in results.items():
        points = max(result["points"], 1)
        print(
            f"{kind:<29} {result['points'] / result['elapsed']:>9.0f} {result['scored'] / result['elapsed']:>9.0f} "
            f"{result['requests'] / result['elapsed']:>7.0f} {result['errors']:>6.0f} {result['p50']:>7.1f} "
            f"{result['p95']:>7.1f} {result['p99']:>7.1f} {server_cpu / points * 1e3:>16.3f} "
            f"{client_cpu / points * 1e3:>16.3f}"
        )


FLEET_KINDS = ("model-bound", "self-learning, scoring")


def fleet(backends: list[str], batches: list[int], streams: int, clients: int, duration: float) -> None:
    """Points/s and latency for `streams` streams of each kind, per backend and batch size (one table)."""
    rows: list[tuple[str, str, int, dict[str, float]]] = []
    for backend in backends:
        workdir = Path(tempfile.mkdtemp(prefix="tswatch-bench-fleet-"))
        cluster = None
        try:
            url = None
            if backend == "postgresql":
                sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
                from tests.postgres import PostgresCluster, find_binaries

                binaries = find_binaries()
                if binaries is None:
                    print("PostgreSQL binaries not found: skipping the postgresql rows")
                    continue
                workdir.chmod(0o755)  # as root the cluster runs as `postgres`, which must reach its folder
                cluster = PostgresCluster.start(workdir / "pg", binaries)
                url = cluster.url(cluster.create_database())
            train(workdir / "models", url)
            port = free_port()
            server = start_server(workdir / "models", port, {"TSWATCH_DATABASE_URL": url} if url else None)
            try:
                base = f"http://127.0.0.1:{port}"
                for number, kind in enumerate(FLEET_KINDS):
                    for row, batch in enumerate(batches):  # the streams are made once per kind
                        start = (
                            None if row == 0 else 1_000_000 * row
                        )  # later rows: a jump ahead, then regular
                        prefix = f"f{number}-"
                        result = asyncio.run(
                            drive(base, streams, batch, clients, duration, prefix, kind, start)
                        )
                        rows.append((backend, kind, batch, result))
                        print(
                            f"  {backend} {kind} batch {batch}: {result['points'] / result['elapsed']:.0f} pts/s"
                        )
            finally:
                stop_server(server)
        finally:
            if cluster is not None:
                cluster.stop()
            shutil.rmtree(workdir, ignore_errors=True)
    print(
        f"\nFleet: {streams} streams per kind, {clients} clients, {duration:.0f} s per row, one `tswatch serve` "
        f"(torch threads 1), {os.cpu_count()} CPUs shared by server, database and clients"
    )
    print(
        f"{'backend':<11} {'stream kind':<23} {'batch':>5} {'points/s':>9} {'errors':>6} {'p50 ms':>7} {'p99 ms':>7}"
    )
    for backend, kind, batch, result in rows:
        print(
            f"{backend:<11} {kind:<23} {batch:>5} {result['points'] / result['elapsed']:>9.0f} "
            f"{result['errors']:>6.0f} {result['p50']:>7.1f} {result['p99']:>7.1f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--streams", type=int, default=50)
    parser.add_argument("--batch", type=int, default=10, help="points per request")
    parser.add_argument("--clients", type=int, default=16, help="concurrent HTTP clients")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of load")
    parser.add_argument("--no-api", action="store_true", help="only the in-process table")
    parser.add_argument("--fleet", action="store_true", help="the fleet table (1,000 streams by default)")
    parser.add_argument("--quick", action="store_true", help="fleet: 5 s per row")
    parser.add_argument("--backends", default="sqlite,postgresql", help="fleet: comma-separated backends")
    parser.add_argument("--batches", default="1,10,100", help="fleet: comma-separated points per request")
    args = parser.parse_args()
    in_process()
    if args.fleet:
        streams = args.streams if args.streams != parser.get_default("streams") else 1000
        fleet(
            args.backends.split(","),
            [int(batch) for batch in args.batches.split(",")],
            streams,
            args.clients,
            5.0 if args.quick else args.duration,
        )
    elif not args.no_api:
        through_api(args.streams, args.batch, args.clients, args.duration)


if __name__ == "__main__":
    main()
