"""`tswatch train --per-series / --search / --ray` from the command line (locally; Ray itself is tested in
tests/training/test_ray_cluster.py), and that the default path never imports ray."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from app.cli.main import cli
from tests.conftest import synthetic_frame

TINY = [
    "--horizon",
    "6",
    "--window",
    "24",
    "--patch-len",
    "6",
    "--hidden",
    "16",
    "--epochs",
    "1",
    "--patience",
    "1",
]


def write_fleet(path: Path, ids: list[str]) -> Path:
    frames = [synthetic_frame(300, seed=i).assign(host=host) for i, host in enumerate(ids)]
    pd.concat(frames, ignore_index=True).to_csv(path, index=False)
    return path


def invoke(tmp_path: Path, *args: str):
    env = {
        "TSWATCH_MODELS_DIR": str(tmp_path / "models"),
        "TSWATCH_TORCH_THREADS": "1",
        "TSWATCH_RAY_ADDRESS": "",
    }
    return CliRunner().invoke(cli, ["train", *args], env=env)


def test_per_series_needs_an_id_column(tmp_path: Path) -> None:
    data = write_fleet(tmp_path / "fleet.csv", ["a"])
    result = invoke(tmp_path, str(data), "--name", "fleet", "--per-series", *TINY)
    assert result.exit_code == 2
    assert "--per-series needs --id-col" in result.output


def test_per_series_refuses_an_id_that_is_no_model_name(tmp_path: Path) -> None:
    data = write_fleet(tmp_path / "fleet.csv", ["a", "B"])
    result = invoke(tmp_path, str(data), "--name", "fleet", "--id-col", "host", "--per-series", *TINY)
    assert result.exit_code == 2
    assert "'B'" in result.output and "invalid model name" in result.output
    assert not (tmp_path / "models" / "fleet-a").exists()


@pytest.mark.slow
def test_per_series_json_lists_every_registered_model(tmp_path: Path) -> None:
    data = write_fleet(tmp_path / "fleet.csv", ["a", "b"])
    result = invoke(
        tmp_path, str(data), "--name", "fleet", "--id-col", "host", "--per-series", "--json", *TINY
    )
    assert result.exit_code == 0, result.output
    models = json.loads(result.stdout)["models"]
    assert [(model["name"], model["version"]) for model in models] == [("fleet-a", 1), ("fleet-b", 1)]


@pytest.mark.slow
def test_search_prints_every_trial_and_records_them(tmp_path: Path) -> None:
    data = tmp_path / "one.csv"
    synthetic_frame(600).to_csv(data, index=False)
    args = [str(data), "--name", "one", "--search", "2", "--horizon", "6", "--epochs", "1", "--patience", "1"]
    printed = invoke(tmp_path, *args)
    assert printed.exit_code == 0, printed.output
    assert "Search: 2 trials on validation" in printed.output and "chosen" in printed.output
    as_json = invoke(tmp_path, *args, "--json")
    trials = json.loads(as_json.stdout)["search"]
    assert [trial["number"] for trial in trials] == [0, 1]
    assert all("validation_mae" in trial and "config" in trial for trial in trials)


def test_ray_missing_names_the_extra(tmp_path: Path) -> None:
    data = tmp_path / "one.csv"
    synthetic_frame(200).to_csv(data, index=False)
    script = (
        "import sys\n"
        "sys.modules['ray'] = None  # as if the extra were not installed\n"
        "from typer.testing import CliRunner\n"
        "from app.cli.main import cli\n"
        f"result = CliRunner().invoke(cli, ['train', {str(data)!r}, '--name', 'x', '--ray', '127.0.0.1:1'])\n"
        "print(result.exit_code, result.output)\n"
    )
    env = {**os.environ, "TSWATCH_MODELS_DIR": str(tmp_path / "models")}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert out.stdout.startswith("2 "), out.stdout + out.stderr
    assert "pip install 'tswatch[ray]'" in out.stdout


@pytest.mark.slow
def test_the_default_path_never_imports_ray(tmp_path: Path) -> None:
    data = tmp_path / "one.csv"
    synthetic_frame(200).to_csv(data, index=False)
    script = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "import app.cli.main\n"
        "assert 'ray' not in sys.modules, 'imported by app.cli.main'\n"
        f"args = ['train', {str(data)!r}, '--name', 'plain', {', '.join(repr(a) for a in TINY)}]\n"
        "result = CliRunner().invoke(app.cli.main.cli, args)\n"
        "assert result.exit_code == 0, result.output\n"
        "print('ray' in sys.modules)\n"
    )
    env = {**os.environ, "TSWATCH_MODELS_DIR": str(tmp_path / "models"), "TSWATCH_TORCH_THREADS": "1"}
    env.pop("TSWATCH_RAY_ADDRESS", None)
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.strip().splitlines()[-1] == "False"


def test_an_unreachable_cluster_fails_fast(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    data = tmp_path / "one.csv"
    synthetic_frame(200).to_csv(data, index=False)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"127.0.0.1:{sock.getsockname()[1]}"  # bound, never listening: refused
        result = invoke(tmp_path, str(data), "--name", "x", "--ray", closed, *TINY)
    assert result.exit_code == 2
    assert f"no Ray cluster answers at {closed}" in result.output
