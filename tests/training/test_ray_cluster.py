"""Per-series training and the search on a real two-node Ray cluster on loopback (tests/ray_cluster.py).

The cluster starts once for the module; every test registers into its own temporary registry.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from app.cli.main import cli
from app.registry.factory import open_registry
from app.registry.store import Registry
from app.settings import Settings
from app.training.data.prepared import PreparedData, prepare
from app.training.fit_tasks import SilentTaskProgress
from app.training.per_series import train_per_series
from app.training.search import train_with_search
from tests.conftest import synthetic_frame
from tests.ray_cluster import DRIVER_ENV, RayCluster, loopback_driver, ray_cluster, ray_installed

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not ray_installed(), reason="ray is not installed (pip install -e '.[ray]')"),
]

TINY = {"horizon": 6, "window": 24, "patch_len": 6, "hidden": 16, "epochs": 2, "patience": 2}
SLOW = {"horizon": 6, "window": 48, "patch_len": 1, "hidden": 32, "epochs": 40, "patience": 40}


def fleet_frame(series: int, points: int = 300) -> pd.DataFrame:
    frames = [synthetic_frame(points, seed=i).assign(host=f"h{i}") for i in range(series)]
    return pd.concat(frames, ignore_index=True)


def fleet(series: int, points: int = 300) -> PreparedData:
    return prepare(fleet_frame(series, points), id_col="host", min_length=30)


@pytest.fixture(scope="module")
def cluster() -> Iterator[RayCluster]:
    with ray_cluster(nodes=2, cpus_per_node=1) as started, loopback_driver():
        yield started


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    opened = open_registry(Settings(models_dir=tmp_path / "models"))
    try:
        yield opened
    finally:
        opened.database.dispose()


def _runner(cluster: RayCluster):  # imported here: no test module imports ray at collection
    from app.training.ray_runner import RayRunner

    return RayRunner(cluster.address)


def _names(registry: Registry) -> list[str]:
    return sorted(model.name for model in registry.list_models())


def test_cluster_listens_on_loopback_only(cluster: RayCluster) -> None:
    assert cluster.processes()
    assert cluster.listening_outside_loopback() == []


def test_per_series_registers_each_series(cluster: RayCluster, registry: Registry) -> None:
    with _runner(cluster) as runner:
        results = train_per_series(fleet(4), "fleet", registry, runner, SilentTaskProgress(), overrides=TINY)
    assert [result.version.name for result in results] == ["fleet-h0", "fleet-h1", "fleet-h2", "fleet-h3"]
    assert _names(registry) == ["fleet-h0", "fleet-h1", "fleet-h2", "fleet-h3"]
    _, manifest = registry.version_manifest("fleet-h2", 1)
    assert [series.id for series in manifest.data.series] == ["h2"]


def test_killed_worker_task_is_retried(cluster: RayCluster, registry: Registry) -> None:
    outcome: dict[str, object] = {}

    def train() -> None:
        try:
            with _runner(cluster) as runner:
                outcome["results"] = train_per_series(
                    fleet(3, 600), "lost", registry, runner, SilentTaskProgress(), overrides=SLOW
                )
        except BaseException as error:
            outcome["error"] = error

    thread = threading.Thread(target=train)
    thread.start()
    killed = None
    deadline = time.monotonic() + 120
    while killed is None and thread.is_alive() and time.monotonic() < deadline:
        workers = cluster.task_workers()
        if workers:
            time.sleep(0.5)  # let the task get into its training loop
            workers = cluster.task_workers()
        if workers:
            killed = workers[0]
            os.kill(killed, signal.SIGKILL)
        time.sleep(0.02)
    thread.join(timeout=300)
    assert killed is not None, "no worker was seen running a fit task"
    assert "error" not in outcome, outcome.get("error")
    assert _names(registry) == ["lost-h0", "lost-h1", "lost-h2"]


def test_ctrl_c_cancels_the_tasks_and_registers_nothing(cluster: RayCluster, tmp_path: Path) -> None:
    data = tmp_path / "fleet.csv"
    fleet_frame(4, 600).to_csv(data, index=False)
    flags = [f"--{key.replace('_', '-')}={value}" for key, value in SLOW.items()]
    command = [sys.executable, "-m", "app.cli.main", "train", str(data), "--name", "stop", "--id-col", "host"]
    command += ["--per-series", "--ray", cluster.address, *flags]
    env = {
        **os.environ,
        **DRIVER_ENV,
        "TSWATCH_MODELS_DIR": str(tmp_path / "models"),
        "TSWATCH_TORCH_THREADS": "1",
    }
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not cluster.task_workers() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert cluster.task_workers(), "no fit task started"
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130, stderr
    assert "nothing was registered" in stderr
    deadline = time.monotonic() + 30
    while cluster.task_workers() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert cluster.task_workers() == []  # cancelled on the cluster, not left running
    registry = open_registry(Settings(models_dir=tmp_path / "models"))
    try:
        assert _names(registry) == []
    finally:
        registry.database.dispose()


def test_search_trials_run_on_the_cluster(cluster: RayCluster, registry: Registry) -> None:
    data = prepare(synthetic_frame(600), min_length=30)
    overrides = {"horizon": 6, "epochs": 2, "patience": 2}
    with _runner(cluster) as runner:
        result = train_with_search(
            data, "searched", registry, runner, SilentTaskProgress(), 3, overrides=overrides
        )
    trials = result.manifest.training.search
    assert [trial.number for trial in trials] == [0, 1, 2]
    assert sum(trial.chosen for trial in trials) == 1
    chosen = next(trial for trial in trials if trial.chosen)
    assert chosen.validation_mae == min(trial.validation_mae for trial in trials)
    assert result.manifest.training.config == chosen.config
    assert _names(registry) == ["searched"]


def test_cli_trains_one_model_on_the_cluster_named_by_the_setting(
    cluster: RayCluster, tmp_path: Path
) -> None:
    data = tmp_path / "one.csv"
    synthetic_frame(300).to_csv(data, index=False)
    flags = [f"--{key.replace('_', '-')}={value}" for key, value in TINY.items()]
    env = {"TSWATCH_MODELS_DIR": str(tmp_path / "models"), "TSWATCH_RAY_ADDRESS": cluster.address}
    result = CliRunner().invoke(cli, ["train", str(data), "--name", "remote", "--json", *flags], env=env)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["name"] == "remote"
