"""Run by tests/api/test_detect_limits.py in a fresh interpreter: one big `/detect` through the real app.

Prints one JSON line: the growth of peak RSS (VmHWM) over the request, status, points and anomalies.
Arguments: MODELS_DIR POINTS [PATH] (default /v1/detect, the model-less route).
"""

from __future__ import annotations

import json
import sys
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
from fastapi.testclient import TestClient

from app.api.app import create_app
from app.settings import Settings


def status_kib(key: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(key):
                return int(line.split()[1])
    raise KeyError(key)


def body(points: int) -> bytes:
    start = datetime(2024, 1, 1)
    hours = np.arange(points)
    values = 10.0 + 3.0 * np.sin(2 * np.pi * hours / 24) + np.random.default_rng(0).normal(0, 0.3, points)
    stamps = [(start + timedelta(hours=int(h))).isoformat() for h in hours]
    return json.dumps({"series": [{"id": "big", "values": values.tolist(), "timestamps": stamps}]}).encode()


def main(models_dir: Path, points: int, path: str) -> None:
    settings = Settings(models_dir=models_dir, inference_process=False, max_body_bytes=64 * 1024 * 1024)
    payload, warm = body(points), body(200)
    headers = {"content-type": "application/json"}
    with TestClient(create_app(settings)) as client:
        assert client.post(path, content=warm, headers=headers).status_code == 200
        before = status_kib("VmHWM")
        response = client.post(path, content=payload, headers=headers)
        peak = status_kib("VmHWM")
        answer = response.json() if response.status_code == 200 else {}
        del response
        result = {
            "status": answer and 200,
            "peak_growth_mb": (peak - before) / 1024,
            "points": len(answer["results"][0]["points"]) if answer else 0,
        }
    print(json.dumps(result))


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else "/v1/detect")
