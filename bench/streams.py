"""Streams: per-point cost in process, and points/s ingested and scored through the API.

1. In process (random-weight GRU, hidden 64 x 2 layers, calendar features): the amortised cost of one
   `StreamScorer.append` (one network step per point, re-anchor every window) for window 32 vs 512, next to
   re-running the whole window per point (what batch detection does). The stream column must stay flat.
2. Through the API: trains a small hourly model (window 48, calendar features) into a temporary registry, starts
   `tswatch serve` on 127.0.0.1, creates `--streams` streams, fills each with one window of history, then
   `--clients` concurrent HTTP clients (asyncio + httpx, one keep-alive connection each) post batches of
   `--batch` points for `--duration` seconds. Each stream belongs to one client, so its batches stay in order.
   Reports acknowledged points/s, request latency, and the server's CPU time per point (from /proc).

    python bench/streams.py [--streams 50] [--batch 10] [--clients 16] [--duration 20] [--no-api]
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

from app.anomaly import ConformalCalibrator
from app.forecasting.forecaster import Forecaster, ForecasterSpec
from app.forecasting.network import NetworkConfig
from app.forecasting.quantiles import DEFAULT_QUANTILES
from app.forecasting.scaling import Scaling
from app.streams.scoring import StreamScorer

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


def stream_cost(model: Forecaster, measured: int) -> float:
    window = model.spec.window
    calibrator = ConformalCalibrator().fit(np.abs(np.random.default_rng(1).normal(size=2000)))
    scorer = StreamScorer(model, calibrator, 0.5)
    stamps, values = series(window + measured)
    for stamp, value in zip(stamps[:window], values[:window], strict=True):
        scorer.append(stamp, float(value))
    start = time.perf_counter()
    for stamp, value in zip(stamps[window:], values[window:], strict=True):
        scorer.append(stamp, float(value))
    return (time.perf_counter() - start) / measured


def rerun_cost(model: Forecaster, repeats: int = 50) -> float:
    window = model.spec.window
    stamps, values = series(window)
    calendar = model.calendar(np.array(stamps, dtype="datetime64[ns]"))[None]
    start = time.perf_counter()
    for _ in range(repeats):
        model.predict(values[None], calendar)
    return (time.perf_counter() - start) / repeats


def in_process() -> None:
    torch.set_num_threads(1)
    print("In process, one thread (random-weight GRU 64 x 2, calendar features)")
    print(f"{'window':>6} | {'stream us/point (amortised)':>28} | {'re-run window us/point':>22}")
    for window in (32, 512):
        model = forecaster(window)
        measured = 8 * window if window <= 64 else 2 * window  # whole anchor periods
        stream_cost(model, window)  # warm-up
        stream = min(stream_cost(model, measured) for _ in range(3))
        rerun = rerun_cost(model)
        print(f"{window:>6} | {stream * 1e6:>28.0f} | {rerun * 1e6:>22.0f}")


# -------------------------------------------------------------------- through the API
def train(models_dir: Path) -> None:
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
    train_model(data, "bench", open_registry(Settings(models_dir=models_dir)), config, alias="production")


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


async def drive(
    base: str, streams: int, batch: int, clients: int, duration: float, prefix: str = "b"
) -> dict[str, float]:
    timeout = httpx.Timeout(60.0)
    async with httpx.AsyncClient(base_url=base, timeout=timeout) as setup:
        for stream in range(streams):
            reply = await setup.put(f"/v1/streams/{prefix}{stream}", json={"model": "bench"})
            assert reply.status_code in (200, 201), reply.text
            reply = await setup.post(
                f"/v1/streams/{prefix}{stream}/points", json=batch_body(stream, 0, API_WINDOW)
            )
            assert reply.status_code == 200, reply.text
    offsets = dict.fromkeys(range(streams), API_WINDOW)
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
    try:
        train(workdir / "models")
        port = free_port()
        server = start_server(workdir / "models", port)
        try:
            base = f"http://127.0.0.1:{port}"
            asyncio.run(drive(base, min(streams, 4), batch, 2, 2.0, prefix="warm-up-"))
            cpu_before, client_before = cpu_seconds(server.pid), time.process_time()
            result = asyncio.run(drive(base, streams, batch, clients, duration))
            server_cpu = cpu_seconds(server.pid) - cpu_before
            client_cpu = time.process_time() - client_before
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(30)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    points_per_s = result["points"] / result["elapsed"]
    print(
        f"\nThrough the API: one `tswatch serve` (torch threads 1, SQLite) on 127.0.0.1, trained GRU 32 x 2, "
        f"window {API_WINDOW}, calendar; {streams} streams x batches of {batch} points, {clients} clients, "
        f"{result['elapsed']:.1f} s, {os.cpu_count()} CPUs shared by server and client"
    )
    print(
        f"{'points/s':>9} {'scored/s':>9} {'req/s':>7} {'errors':>6} {'p50 ms':>7} {'p95 ms':>7} "
        f"{'p99 ms':>7} {'server CPU ms/point':>19} {'client CPU ms/point':>19}"
    )
    print(
        f"{points_per_s:>9.0f} {result['scored'] / result['elapsed']:>9.0f} "
        f"{result['requests'] / result['elapsed']:>7.0f} {result['errors']:>6.0f} {result['p50']:>7.1f} "
        f"{result['p95']:>7.1f} {result['p99']:>7.1f} {server_cpu / max(result['points'], 1) * 1e3:>19.3f} "
        f"{client_cpu / max(result['points'], 1) * 1e3:>19.3f}"
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
    args = parser.parse_args()
    in_process()
    if not args.no_api:
        through_api(args.streams, args.batch, args.clients, args.duration)


if __name__ == "__main__":
    main()
