"""Interval coverage on the ETTh1 test months with online calibration (actuals fed back) vs training's calibration.

A user's setup, end to end: `tswatch train` on ETTh1 `OT` (the first 16 months of the standard split: its training
and validation rows [0, 11520), cut 70/15/15 by the trainer as usual) with defaults and `--horizon 24`, then a real
`tswatch serve` on 127.0.0.1. The test months, rows [11520, 14400), arrive one hour at a time: at every origin the
bench asks `/forecast` for the next 24 hours twice in one request, as series "OT" (whose actuals it feeds back) and
as series "reference" (never fed: training's calibration), then posts the hour's actual to `/actuals` for "OT".
Coverage of the 80% and 95% intervals over every origin and step whose actual lies in the test months.

    TSWATCH_TORCH_THREADS=1 python bench/intervals.py [--data ../shared/data/ett] [--stride 1]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
from streams import free_port, start_server, stop_server  # bench/streams.py (this folder is on sys.path)

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "ett"
TEST_START, TEST_END = 11_520, 14_400
HORIZON = 24
LEVELS = (80.0, 95.0)


def train(data_dir: Path, models_dir: Path) -> float:
    """Train with defaults on rows [0, TEST_START); returns the seconds it took."""
    frame = pd.read_csv(data_dir / "ETTh1.csv", usecols=["date", "OT"]).iloc[:TEST_START]
    path = models_dir.parent / "etth1_train.csv"
    frame.to_csv(path, index=False)
    env = {key: value for key, value in os.environ.items() if not key.startswith("TSWATCH_")}
    env.update({"TSWATCH_MODELS_DIR": str(models_dir), "TSWATCH_TORCH_THREADS": "1"})
    command = [sys.executable, "-m", "app.cli.main", "train", str(path), "--name", "etth1"]
    command += ["--time-col", "date", "--value-col", "OT", "--horizon", str(HORIZON)]
    started = time.perf_counter()
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def find_key(document: Any, key: str) -> Iterator[Any]:
    if isinstance(document, dict):
        for name, value in document.items():
            if name == key:
                yield value
            yield from find_key(value, key)
    elif isinstance(document, list):
        for value in document:
            yield from find_key(value, key)


def model_window(models_dir: Path) -> int:
    env = {key: value for key, value in os.environ.items() if not key.startswith("TSWATCH_")}
    env["TSWATCH_MODELS_DIR"] = str(models_dir)
    shown = subprocess.run(
        [sys.executable, "-m", "app.cli.main", "models", "show", "etth1", "--json"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return int(next(find_key(json.loads(shown.stdout), "window")))


def series(series_id: str, values: np.ndarray, stamps: list[str]) -> dict[str, Any]:
    return {"id": series_id, "values": [float(value) for value in values], "timestamps": stamps}


def run(
    client: httpx.Client, values: np.ndarray, stamps: list[str], window: int, stride: int
) -> dict[str, Any]:
    """Walk the test months; returns per-origin bands {"OT"|"reference": [O, 2, levels, H]} and the targets."""

    def feed(start: int, end: int) -> None:
        body = {"series": [series("OT", values[start:end], stamps[start:end])]}
        answer = client.post("/v1/models/etth1/actuals", json=body)
        answer.raise_for_status()

    feed(TEST_START - window, TEST_START)  # context only: resolves nothing
    bands: dict[str, list[np.ndarray]] = {"OT": [], "reference": []}
    origins = list(range(TEST_START, TEST_END, stride))
    observations = 0
    for origin in origins:  # the forecast made when rows < origin are known
        context = slice(origin - window, origin)
        body = {
            "series": [series(name, values[context], stamps[context]) for name in ("OT", "reference")],
            "levels": list(LEVELS),
        }
        answer = client.post("/v1/models/etth1/forecast", json=body)
        answer.raise_for_status()
        for forecast in answer.json()["forecasts"]:
            intervals = sorted(forecast["intervals"], key=lambda item: item["level"])
            bands[forecast["id"]].append(
                np.array([[item["lower"] for item in intervals], [item["upper"] for item in intervals]])
            )
            if forecast["id"] == "OT":
                observations = forecast["calibration"]["observations"]
        feed(origin, min(origin + stride, TEST_END))
    return {
        "origins": np.array(origins),
        "bands": {name: np.stack(rows) for name, rows in bands.items()},  # [O, 2, L, H]
        "observations": observations,
    }


def coverage(
    values: np.ndarray, origins: np.ndarray, bands: np.ndarray, part: slice = slice(None)
) -> list[float]:
    """Coverage per level over origins[part] and steps whose target is a test row."""
    targets = origins[:, None] + np.arange(HORIZON)[None]  # [O, H] row index of each step
    inside = targets < TEST_END
    actual = values[np.minimum(targets, TEST_END - 1)]  # [O, H]
    result = []
    for level in range(len(LEVELS)):
        hit = (bands[:, 0, level] <= actual) & (actual <= bands[:, 1, level])
        result.append(float(hit[part][inside[part]].mean()))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument(
        "--stride", type=int, default=1, help="hours between forecast origins (and actual posts)"
    )
    args = parser.parse_args()
    frame = pd.read_csv(args.data / "ETTh1.csv", usecols=["date", "OT"]).iloc[:TEST_END]
    values = frame["OT"].to_numpy(dtype=np.float64)
    stamps = [pd.Timestamp(stamp).isoformat() for stamp in frame["date"]]
    with tempfile.TemporaryDirectory() as folder:
        models_dir = Path(folder) / "models"
        seconds = train(args.data, models_dir)
        window = model_window(models_dir)
        port = free_port()
        process = start_server(models_dir, port)
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
                started = time.perf_counter()
                walked = run(client, values, stamps, window, args.stride)
                walk_seconds = time.perf_counter() - started
        finally:
            stop_server(process)
    origins = walked["origins"]
    half = slice(len(origins) // 2, None)
    print(
        f"ETTh1 OT, h={HORIZON}, window {window} (defaults; trained in {seconds:.0f} s); test rows "
        f"[{TEST_START}, {TEST_END}), {len(origins)} origins, stride {args.stride}; walk {walk_seconds:.0f} s; "
        f"{walked['observations']} actuals folded in"
    )
    print(f"{'calibration':<22}{'80% all':>9}{'95% all':>9}{'80% 2nd half':>14}{'95% 2nd half':>14}")
    for label, name in (("training (reference)", "reference"), ("online (actuals fed)", "OT")):
        every = coverage(values, origins, walked["bands"][name])
        later = coverage(values, origins, walked["bands"][name], half)
        print(f"{label:<22}{every[0]:>9.3f}{every[1]:>9.3f}{later[0]:>14.3f}{later[1]:>14.3f}")


if __name__ == "__main__":
    main()
