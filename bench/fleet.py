"""Fleet cost of self-learning streams: CPU-seconds per stream for the first fit and per refit, and the time a
fleet of 10,000 self-learning streams needs on two cores to get through its learning period (issue 14, Speed).

1. In process, one thread, the product's detector (`app.anomaly.detector.Detector`, default config) on `--streams`
   synthetic series (5-minute with a daily cycle, hourly with a daily cycle, daily with a weekly one; noise,
   trend). CPU time (`time.process_time`) of: each learning reading, the reading that ends learning (the first
   fit: ridge solve + replay of the learning readings to warm the rank windows), each reading that refits, and
   the other scoring readings.
2. Through the API: a real `tswatch serve` (temporary models dir, SQLite, torch threads 1); `--api-streams`
   self-learning streams are created and each is sent its learning period plus one reading, `--batch` readings
   per request, `--clients` clients at a time. The server's CPU time (/proc) per stream is everything a stream
   costs until it scores: HTTP, validation, storage, learning and the first fit.
Both are extrapolated to 10,000 streams on two cores (perfectly parallel: an upper bound on the speed).

    python bench/fleet.py [--streams 200] [--api-streams 100] [--batch 10] [--clients 8] [--learning-points 100]
"""

from __future__ import annotations

import argparse
import signal
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
from streams import cpu_seconds, free_port, start_server  # bench/streams.py (this folder is on sys.path)

from app.anomaly.detector import DEFAULT_LEARNING_POINTS, Detector, DetectorConfig

START = datetime(2024, 1, 1)
FLEET = 10_000
CORES = 2
STEPS = (timedelta(minutes=5), timedelta(hours=1), timedelta(days=1))
SEASONS = (288, 24, 7)  # readings per cycle for each step


def fleet_series(index: int, points: int) -> tuple[list[datetime], list[float]]:
    """A seasonal series with noise and a small trend; the kind (sampling, cycle) rotates with `index`."""
    rng = np.random.default_rng(index)
    kind = index % len(STEPS)
    steps = np.arange(points)
    cycle = np.sin(2 * np.pi * steps / SEASONS[kind])
    values = 50 + 10 * cycle + 0.002 * steps + rng.normal(0, 1 + kind, points)
    return [START + STEPS[kind] * int(k) for k in steps], values.tolist()


@dataclass
class StreamCost:
    learning: float  # CPU-s of all learning readings before the last one
    first_fit: float  # CPU-s of the reading that ends learning
    refits: list[float]  # CPU-s of each reading that refitted
    scoring: float  # CPU-s per ordinary scoring reading


def measure_stream(index: int, config: DetectorConfig, refits: int) -> StreamCost:
    points = config.learning_points + refits * config.refit_interval + 1
    stamps, values = fleet_series(index, points)
    detector = Detector(config)
    clock = time.process_time
    began = clock()
    for stamp, value in zip(stamps[: config.learning_points - 1], values, strict=False):
        detector.update(stamp, value)
    learning = clock() - began
    began = clock()
    detector.update(stamps[config.learning_points - 1], values[config.learning_points - 1])
    first_fit = clock() - began
    assert detector.state_name == "scoring"
    refit_costs, scoring = [], []
    for stamp, value in zip(stamps[config.learning_points :], values[config.learning_points :], strict=True):
        before, began = detector.refits, clock()
        detector.update(stamp, value)
        spent = clock() - began
        (refit_costs if detector.refits > before else scoring).append(spent)
    return StreamCost(learning, first_fit, refit_costs, float(np.mean(scoring)))


def in_process(streams: int, learning_points: int, refits: int) -> float:
    """Print the per-stream CPU table; returns the CPU-s a stream needs to get through learning."""
    config = DetectorConfig(learning_points=learning_points)
    costs = [measure_stream(index, config, refits) for index in range(streams)]
    rows = {
        f"learning readings ({learning_points - 1}), whole": [c.learning for c in costs],
        "first fit (reading that ends learning)": [c.first_fit for c in costs],
        f"refit (every {config.refit_interval} readings)": [r for c in costs for r in c.refits],
        "ordinary scoring reading": [c.scoring for c in costs],
    }
    print(
        f"In process, one thread: {streams} self-learning detectors (learning_points {learning_points}, "
        f"memory {config.memory}), CPU seconds"
    )
    print(f"{'':<42} {'median':>9} {'p95':>9} {'max':>9}")
    for label, samples in rows.items():
        median, p95, top = np.percentile(samples, [50, 95, 100])
        print(f"{label:<42} {median:>9.5f} {p95:>9.5f} {top:>9.5f}")
    per_stream = float(np.mean([c.learning + c.first_fit for c in costs]))
    print(
        f"{FLEET:,} streams through learning on {CORES} cores (detector only): "
        f"{FLEET * per_stream / CORES:.0f} s; first fits alone: "
        f"{FLEET * float(np.mean([c.first_fit for c in costs])) / CORES:.1f} s"
    )
    return per_stream


def through_api(streams: int, learning_points: int, batch: int, clients: int) -> None:
    with tempfile.TemporaryDirectory(prefix="tswatch-bench-fleet-") as workdir:
        port = free_port()
        server = start_server(Path(workdir) / "models", port)
        base = f"http://127.0.0.1:{port}"
        try:
            fill(base, "warm-up", 0, learning_points + 1, batch)
            before, began = cpu_seconds(server.pid), time.perf_counter()
            with ThreadPoolExecutor(max_workers=clients) as pool:
                states = list(
                    pool.map(lambda i: fill(base, "f", i, learning_points + 1, batch), range(streams))
                )
            wall = time.perf_counter() - began
            server_cpu = cpu_seconds(server.pid) - before
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(30)
    if any(state != "scoring" for state in states):
        raise SystemExit(f"not every stream is scoring: {sorted(set(states))}")
    per_stream = server_cpu / streams
    print(
        f"\nThrough the API: {streams} self-learning streams, each sent {learning_points + 1} readings in "
        f"requests of {batch}, {clients} clients: {wall:.1f} s wall, server CPU {per_stream:.3f} s per stream "
        f"(HTTP, storage, learning, first fit)"
    )
    print(
        f"{FLEET:,} streams through learning on {CORES} cores (server CPU, requests of {batch}): "
        f"{FLEET * per_stream / CORES / 60:.1f} min"
    )


def fill(base: str, prefix: str, index: int, points: int, batch: int) -> str:
    """Create one self-learning stream, send it `points` readings; its state afterwards."""
    stamps, values = fleet_series(index, points)
    with httpx.Client(base_url=base, timeout=120) as client:
        client.put(f"/v1/streams/{prefix}{index}", json={"learning_points": points - 1}).raise_for_status()
        for lo in range(0, points, batch):
            body = {
                "points": [
                    {"timestamp": stamp.isoformat() + "Z", "value": value}
                    for stamp, value in zip(stamps[lo : lo + batch], values[lo : lo + batch], strict=True)
                ]
            }
            client.post(f"/v1/streams/{prefix}{index}/points", json=body).raise_for_status()
        state: str = client.get(f"/v1/streams/{prefix}{index}").json()["state"]
        return state


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--streams", type=int, default=200, help="detectors measured in process")
    parser.add_argument("--refits", type=int, default=2, help="refits measured per detector")
    parser.add_argument("--learning-points", type=int, default=DEFAULT_LEARNING_POINTS)
    parser.add_argument(
        "--api-streams", type=int, default=100, help="streams created through the API (0: skip)"
    )
    parser.add_argument("--batch", type=int, default=10, help="readings per request through the API")
    parser.add_argument("--clients", type=int, default=8, help="concurrent HTTP clients")
    args = parser.parse_args()
    in_process(args.streams, args.learning_points, args.refits)
    if args.api_streams:
        through_api(args.api_streams, args.learning_points, args.batch, args.clients)


if __name__ == "__main__":
    main()
