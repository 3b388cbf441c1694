"""Serving throughput: forecast vs an echo of the same body, on one real server, in one run.

Trains a window-96/horizon-24 model into a temporary registry, starts the tswatch app on 127.0.0.1 with an
echo endpoint added (`bench/echo_app.py`: the same app and uvicorn configuration as `tswatch serve`), then
drives both endpoints with `wrk` (Debian package `wrk`; many connections from one efficient C process) and
prints requests/s and latency percentiles. Forecast/echo >= 0.8 and p99 <= 3 x p50
are the targets: micro-batching must make the model cost disappear behind the HTTP stack.

    python bench/serve.py [--connections 16] [--duration 20] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd

from app.registry.factory import open_registry
from app.settings import Settings
from app.training.config import TrainingConfig
from app.training.data.prepared import prepare
from app.training.pipeline import train_model

LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [[%s]]
done = function(summary, latency, requests)
  io.write(string.format("RESULT %%d %%d %%f %%f %%f %%f\\n", summary.requests,
    summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.duration / 1e6, latency:percentile(50) / 1e3, latency:percentile(95) / 1e3, latency:percentile(99) / 1e3))
end
"""


def train(models_dir: Path) -> None:
    points = 3000
    stamps = pd.date_range("2024-01-01", periods=points, freq="h")
    values = (
        10 + 3 * np.sin(2 * np.pi * np.arange(points) / 24) + np.random.default_rng(0).normal(0, 0.3, points)
    )
    data = prepare(pd.DataFrame({"timestamp": stamps, "value": values}), min_length=120)
    config = TrainingConfig(window=96, horizon=24, hidden=64, layers=2, patch_len=8, epochs=2, calendar=False)
    train_model(
        data, "bench", open_registry(Settings(models_dir=models_dir)), config, alias="production", force=True
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(
    models_dir: Path, port: int, threads: int, inference_process: bool = True
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "TSWATCH_MODELS_DIR": str(models_dir),
        "TSWATCH_TORCH_THREADS": str(threads),
        "TSWATCH_INFERENCE_PROCESS": str(inference_process).lower(),
    }
    command = [sys.executable, str(Path(__file__).with_name("echo_app.py")), "--port", str(port)]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(300):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit("server did not become ready")


def drive(url: str, body: str, connections: int, duration: int, workdir: Path) -> dict[str, float]:
    script = workdir / "post.lua"
    script.write_text(LUA % body)
    command = [
        "wrk",
        "-t",
        "1",
        "-c",
        str(connections),
        "-d",
        f"{duration}s",
        "-s",
        str(script),
        "--latency",
        url,
    ]
    output = subprocess.run(command, capture_output=True, text=True, timeout=duration + 60).stdout
    match = re.search(r"RESULT (\d+) (\d+) ([\d.]+) ([\d.]+) ([\d.]+) ([\d.]+)", output)
    if match is None:
        raise SystemExit(f"could not read wrk output:\n{output}")
    requests, errors, seconds, p50, p95, p99 = (float(group) for group in match.groups())
    return {"rps": requests / seconds, "errors": errors, "p50": p50, "p95": p95, "p99": p99}


def combine(rows: list[dict[str, float]]) -> dict[str, float]:
    """Rounds of one endpoint as one run: total throughput, mean p50/p95, worst p99 (wrk gives no raw samples)."""
    return {
        "rps": float(np.mean([row["rps"] for row in rows])),
        "errors": sum(row["errors"] for row in rows),
        "p50": float(np.mean([row["p50"] for row in rows])),
        "p95": float(np.mean([row["p95"] for row in rows])),
        "p99": max(row["p99"] for row in rows),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--duration", type=int, default=20, help="seconds per endpoint, over all rounds")
    parser.add_argument("--rounds", type=int, default=4, help="alternating echo/forecast rounds")
    parser.add_argument("--threads", type=int, default=1, help="torch threads in the server")
    parser.add_argument(
        "--inference",
        choices=["process", "thread"],
        default="process",
        help="where batched forecasts run (TSWATCH_INFERENCE_PROCESS)",
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("bench/serve.py needs wrk (apt-get install wrk)")
    workdir = Path(tempfile.mkdtemp(prefix="tswatch-bench-"))
    train(workdir / "models")
    port = free_port()
    server = start_server(workdir / "models", port, args.threads, args.inference == "process")
    series = 10 + 3 * np.sin(2 * np.pi * np.arange(96) / 24)
    body = json.dumps({"series": [{"id": "s", "values": [round(v, 4) for v in series]}], "horizon": 24})
    try:
        base = f"http://127.0.0.1:{port}"
        drive(f"{base}/v1/models/bench/forecast", body, args.connections, 3, workdir)  # warm-up
        urls = {"echo": f"{base}/v1/echo", "forecast": f"{base}/v1/models/bench/forecast"}
        slice_seconds = max(1, round(args.duration / args.rounds))
        rounds: dict[str, list[dict[str, float]]] = {name: [] for name in urls}
        for _ in range(args.rounds):  # alternate, so a drift in machine speed hits both endpoints alike
            for name, url in urls.items():
                rounds[name].append(drive(url, body, args.connections, slice_seconds, workdir))
        results = {name: combine(rows) for name, rows in rounds.items()}
        ratios = [f["rps"] / e["rps"] for e, f in zip(rounds["echo"], rounds["forecast"], strict=True)]
        metrics = httpx.get(f"{base}/metrics").text
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)
        shutil.rmtree(workdir, ignore_errors=True)
    print(
        f"{args.connections} connections, {args.rounds} alternating rounds of {slice_seconds} s per endpoint, "
        f"one server on 127.0.0.1, inference in a {args.inference}"
    )
    print(
        f"{'endpoint':<10} {'req/s':>9} {'errors':>7} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'p99/p50':>8}"
    )
    for name, row in results.items():
        ratio = row["p99"] / row["p50"]
        print(
            f"{name:<10} {row['rps']:>9.0f} {row['errors']:>7.0f} {row['p50']:>8.2f} {row['p95']:>8.2f} {row['p99']:>8.2f} {ratio:>8.2f}"
        )
    print(
        f"forecast / echo throughput: {results['forecast']['rps'] / results['echo']['rps']:.2f} (target >= 0.8); "
        f"per round: {' '.join(f'{r:.2f}' for r in ratios)}"
    )
    sums = re.search(r"tswatch_batch_size_sum ([\d.e+]+)", metrics)
    counts = re.search(r"tswatch_batch_size_count ([\d.e+]+)", metrics)
    if sums and counts and float(counts.group(1)):
        print(
            f"mean series per forward pass (micro-batching): {float(sums.group(1)) / float(counts.group(1)):.1f}"
        )


if __name__ == "__main__":
    main()
