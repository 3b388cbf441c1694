"""Batch detection under load: cost per request and what a big `/detect` does to the rest of the server.

Trains a small hourly model (window 48, calendar features; bench/streams.py's `train`) into a temporary
registry, starts `tswatch serve` on 127.0.0.1 and, for each size, posts one `/detect` of that many points
(several at once with `--parallel`) while a stream receives one single-point append every 0.2 s. Reports the
detection's wall time, the server's RSS growth (sampled peak over the baseline, and what is left resident
after), and the append latency (median and worst) during the detection. Targets (issue 13): a 200,000-point
detection under 200 MB extra RSS; a concurrent single-point append within 100 ms.

    python bench/detect.py [--sizes 20000,100000,200000] [--parallel 1]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path

import httpx
from streams import (  # bench/streams.py (this folder is on sys.path)
    START,
    free_port,
    series,
    stop_server,
    train,
)
from streams import start_server as start_bench_server


def start_server(models_dir: Path, port: int) -> subprocess.Popen[bytes]:
    """bench/streams.py's server with a body limit that admits the largest request."""
    return start_bench_server(models_dir, port, {"TSWATCH_MAX_BODY_BYTES": str(256 * 1024 * 1024)})


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def detect_body(points: int) -> bytes:
    stamps, values = series(points)
    return json.dumps(
        {"series": [{"id": "big", "values": values.tolist(), "timestamps": [s.isoformat() for s in stamps]}]}
    ).encode()


class Appender(threading.Thread):
    """One single-point append every `period` seconds to stream `s1` until stopped; records latencies."""

    def __init__(self, url: str, offset: int, period: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.url, self.offset, self.period = url, offset, period
        self.latencies: list[float] = []
        self.stop = threading.Event()

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=600) as client:
            while not self.stop.is_set():
                stamp = (START + timedelta(hours=self.offset)).isoformat()
                began = time.perf_counter()
                reply = client.post(
                    "/v1/streams/s1/points", json={"points": [{"timestamp": stamp, "value": 10.0}]}
                )
                self.latencies.append(time.perf_counter() - began)
                if reply.status_code != 200:
                    raise RuntimeError(reply.text)
                self.offset += 1
                self.stop.wait(self.period)


def run_size(url: str, pid: int, points: int, parallel: int, offset: int) -> tuple[dict[str, float], int]:
    body = detect_body(points)
    baseline, peak = rss_mb(pid), 0.0
    appender = Appender(url, offset)
    statuses: list[int] = []

    def detect() -> None:
        with httpx.Client(base_url=url, timeout=1800) as client:
            reply = client.post(
                "/v1/models/bench/detect", content=body, headers={"content-type": "application/json"}
            )
            statuses.append(reply.status_code)

    workers = [threading.Thread(target=detect) for _ in range(parallel)]
    began = time.perf_counter()
    for worker in workers:
        worker.start()
    appender.start()
    while any(worker.is_alive() for worker in workers):
        peak = max(peak, rss_mb(pid))
        time.sleep(0.05)
    seconds = time.perf_counter() - began
    appender.stop.set()
    appender.join()
    time.sleep(1.0)
    latencies = sorted(appender.latencies) or [float("nan")]
    row = {
        "points": points,
        "parallel": parallel,
        "status": max(statuses),
        "seconds": seconds,
        "rss_peak_mb": peak - baseline,
        "rss_after_mb": rss_mb(pid) - baseline,
        "append_median_ms": statistics.median(latencies) * 1000,
        "append_max_ms": latencies[-1] * 1000,
        "appends": len(appender.latencies),
    }
    return row, appender.offset


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="20000,100000,200000")
    parser.add_argument("--parallel", type=int, default=1)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="tswatch-bench-detect-"))
    process = None
    try:
        print("training the bench model ...", flush=True)
        train(workdir / "models")
        port = free_port()
        process = start_server(workdir / "models", port)
        url = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=url, timeout=60) as client:
            client.put("/v1/streams/s1", json={"model": "bench"}).raise_for_status()
            stamps, values = series(60)
            history = [
                {"timestamp": s.isoformat(), "value": float(v)} for s, v in zip(stamps, values, strict=True)
            ]
            client.post("/v1/streams/s1/points", json={"points": history}).raise_for_status()
            json_type = {"content-type": "application/json"}
            client.post(
                "/v1/models/bench/detect", content=detect_body(500), headers=json_type
            ).raise_for_status()
        offset = 60
        header = "points | parallel | status | seconds | RSS peak +MB | RSS after +MB | append median ms | append max ms"
        print(header)
        print("-" * len(header))
        for points in (int(size) for size in args.sizes.split(",")):
            row, offset = run_size(url, process.pid, points, args.parallel, offset)
            print(
                f"{row['points']:>6} | {row['parallel']:>8} | {row['status']:>6} | {row['seconds']:>7.1f} | "
                f"{row['rss_peak_mb']:>12.0f} | {row['rss_after_mb']:>13.0f} | {row['append_median_ms']:>16.1f} | "
                f"{row['append_max_ms']:>13.1f}",
                flush=True,
            )
    finally:
        if process is not None:
            stop_server(process)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
