"""bench/abuse.py --quick runs end to end against a real server and prints one table row per attack."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench.abuse import ATTACKS, QUICK_SKIP  # noqa: E402

pytestmark = pytest.mark.slow


def test_quick_run_prints_every_attack_row() -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("TSWATCH_")}
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "abuse.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=540,
        cwd=ROOT,
        env={**env, "TSWATCH_TORCH_THREADS": "1"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    header = next(index for index, line in enumerate(lines) if line.startswith("#"))
    rows = {line.split()[0]: line for line in lines[header + 2 :] if line.strip()}
    for attack_id, name in ATTACKS:
        if attack_id in QUICK_SKIP:
            assert attack_id not in rows
            continue
        assert attack_id in rows and name in rows[attack_id], (
            f"no row for {attack_id} {name}:\n{result.stdout}"
        )
        assert "bench error" not in rows[attack_id], rows[attack_id]
