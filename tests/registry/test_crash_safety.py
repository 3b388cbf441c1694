"""Crash safety: SIGKILL real publishing processes at random moments, then audit the registry."""

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from app.registry.artifacts import MANIFEST_FILE, WEIGHTS_FILE, read_manifest, read_weights
from app.registry.factory import open_registry
from app.settings import Settings

REPO = Path(__file__).resolve().parents[2]
MODEL = "crashy"

PUBLISHER = """
import itertools, sys
from pathlib import Path
from app.registry.artifacts import read_manifest, read_weights
from app.registry.factory import open_registry
from app.settings import Settings

source, target, tag = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
manifest = read_manifest(source)
tensors = read_weights(source, manifest)
registry = open_registry(Settings(models_dir=target))
print("ready", flush=True)
for i in itertools.count():
    alias = "production" if i % 3 == 0 else None
    info = registry.publish("crashy", tensors, manifest, alias=alias, force=True)  # tiny loses to naive
    print(info.version, flush=True)
"""


def start_publisher(source: Path, target: Path, tag: str) -> subprocess.Popen[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("TSWATCH_")}
    return subprocess.Popen(
        [sys.executable, "-c", PUBLISHER, str(source), str(target), tag],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env=env,
    )


def wait_ready(process: subprocess.Popen[str]) -> None:
    line = process.stdout.readline()
    if line.strip() != "ready":
        process.kill()
        process.wait(10)
        raise AssertionError(f"publisher did not start: {line!r}\n{process.stderr.read()}")


def kill_round(source: Path, target: Path, rng: random.Random, publishers: int, round_no: int) -> int:
    """Start `publishers` concurrent processes, SIGKILL each at its own random moment; return versions printed."""
    processes = [start_publisher(source, target, f"r{round_no}p{n}") for n in range(publishers)]
    try:
        for process in processes:
            wait_ready(process)
        deadlines = sorted(rng.uniform(0.05, 0.5) for _ in processes)
        started = time.monotonic()
        for process, deadline in zip(processes, deadlines, strict=True):
            time.sleep(max(0.0, started + deadline - time.monotonic()))
            assert process.poll() is None, process.stderr.read()
            process.send_signal(signal.SIGKILL)
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
            process.wait(30)
    printed = 0
    for process in processes:
        assert process.returncode == -signal.SIGKILL, process.stderr.read()
        printed += sum(1 for line in process.stdout.read().splitlines() if line.strip().isdigit())
        process.stdout.close()
        process.stderr.close()
    return printed


@pytest.fixture
def source_artifact(tiny_models_dir) -> Path:
    registry = open_registry(Settings(models_dir=tiny_models_dir))
    try:
        return registry.get_version("tiny", 1).path
    finally:
        registry.database.dispose()


@pytest.mark.slow
def test_killing_publishers_at_random_moments_never_corrupts_the_registry(source_artifact, tmp_path):
    target = tmp_path / "registry"
    rng = random.Random(20240601)
    printed = 0
    for round_no in range(4):
        printed += kill_round(source_artifact, target, rng, publishers=1 + round_no % 2, round_no=round_no)

    registry = open_registry(Settings(models_dir=target))
    try:
        versions = registry.versions(MODEL)
        numbers = [info.version for info in versions]
        assert (
            len(numbers) >= printed > 0
        )  # every version a publisher saw committed is there (and maybe more)
        assert len(numbers) == len(set(numbers))
        source_manifest = read_manifest(source_artifact)
        source_weights = read_weights(source_artifact, source_manifest)
        windows = np.linspace(8.0, 12.0, 2 * 24, dtype=np.float32).reshape(2, 24)
        stamps = np.datetime64("2024-03-01T00:00") + np.arange(48).reshape(2, 24).astype("timedelta64[h]")
        reference = None
        for info in versions:
            assert info.path == target / MODEL / str(info.version)
            loaded = registry.load(info)  # verifies manifest and weights hashes and the format
            assert loaded.manifest.spec == source_manifest.spec
            assert loaded.forecaster.network.state_dict().keys() == source_weights.keys()
            forecast = loaded.forecaster.predict(windows, loaded.forecaster.calendar(stamps))
            reference = forecast if reference is None else reference
            np.testing.assert_array_equal(forecast, reference)
        production = registry.resolve(MODEL)
        assert production.version in numbers

        # leftovers of the crashes (and a simulated crash just after a version folder was claimed)
        model_dir = target / MODEL
        folders = [int(p.name) for p in model_dir.iterdir() if p.name.isdigit()]
        assert set(numbers) <= set(folders)
        orphan = model_dir / str(max(folders) + 1)
        orphan.mkdir()
        (orphan / WEIGHTS_FILE).write_bytes(b"half-written")
        staging = model_dir / ".staging-crashed"
        staging.mkdir()
        (staging / MANIFEST_FILE).write_bytes(b"{")
        leftovers = {p.name for p in model_dir.iterdir()} - {str(n) for n in numbers}
        assert {orphan.name, staging.name} <= leftovers

        assert [info.version for info in registry.versions(MODEL)] == numbers  # leftovers are invisible
        manifest = read_manifest(source_artifact)
        tensors = read_weights(source_artifact, manifest)
        # forced: the tiny model loses to seasonal naive
        info = registry.publish(MODEL, tensors, manifest, alias="production", force=True)
        assert info.version == max(numbers) + 1  # an orphan in the way is discarded: no number is burned
        assert not any(p.name.startswith(".trash-") for p in model_dir.iterdir())
        assert registry.resolve(MODEL).version == info.version
        assert registry.load(info).version == info.version
        assert [v.version for v in registry.versions(MODEL)] == [*numbers, info.version]
    finally:
        registry.database.dispose()
