"""`tswatch train` and `tswatch models ...` end to end, through the real console entry point."""

import json
import re
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NoReturn

import numpy as np
import pandas as pd
import pytest

from app.registry.factory import open_registry
from app.settings import Settings

pytestmark = pytest.mark.slow

TRAIN_ARGS = ("--epochs", "2", "--window", "24", "--horizon", "6", "--hidden", "8")


def hourly_sine(points: int = 900, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    hours = np.arange(points)
    values = 10.0 + 3.0 * np.sin(2 * np.pi * hours / 24) + rng.normal(0, 0.3, points)
    return pd.DataFrame({"timestamp": pd.date_range("2024-01-01", periods=points, freq="h"), "value": values})


def flat(text: str) -> str:
    """Rich wraps long lines at the terminal width; compare text with whitespace collapsed."""
    return " ".join(text.split())


def run_parallel(run_cli, registry_dir, *commands):
    """Run independent CLI invocations two at a time (each spends ~3 s importing torch)."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        return list(pool.map(lambda args: run_cli(registry_dir, *args), commands))


def ok(result):
    assert result.returncode == 0, (
        f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    )
    return result


@pytest.fixture
def csv_path(tmp_path):
    path = tmp_path / "load.csv"
    hourly_sine().to_csv(path, index=False)
    return path


@pytest.fixture
def registry_dir(tmp_path):
    return tmp_path / "models"


def test_train_then_inspect_and_alias_through_the_cli(run_cli, csv_path, registry_dir):
    # --force: 2 epochs lose to seasonal naive (tests/cli/test_baseline_guard_cli.py covers the refusal)
    production = ("--alias", "production", "--force")
    trained = ok(
        run_cli(registry_dir, "train", str(csv_path), "--name", "cli-model", *TRAIN_ARGS, *production)
    )
    out = flat(trained.stdout)
    assert "Registered cli-model version 1" in out
    # stdout is a pipe: whole progress lines, no bar fragments, no `file.py:123` suffixes
    assert "cli-model: training up to" in trained.stdout and "cli-model: epoch   1" in trained.stdout
    assert "cli-model epoch" not in trained.stdout and "ETA" not in trained.stdout  # the bar's text
    assert ".py:" not in trained.stdout
    for text in ("Test split", "MAE", "RMSE", "model", "seasonal naive", "random walk"):
        assert text in out, text
    assert "Prediction intervals" in out and "coverage" in out and "80%" in out

    listed, show_json, show_one = run_parallel(
        run_cli,
        registry_dir,
        ("models", "list", "--json"),
        ("models", "show", "cli-model", "--json"),
        ("models", "show", "cli-model@1"),
    )
    assert json.loads(ok(listed).stdout) == [
        {"name": "cli-model", "versions": [1], "latest_version": 1, "aliases": {"production": 1}}
    ]

    manifest = json.loads(ok(show_json).stdout)
    assert (manifest["name"], manifest["version"]) == ("cli-model", 1)
    assert manifest["spec"]["window"] == 24 and manifest["spec"]["horizon"] == 6
    assert manifest["spec"]["network"]["hidden_size"] == 8
    assert manifest["data"]["source"] == "load.csv"
    assert manifest["training"]["config"]["epochs"] == 2
    assert {"model", "baselines", "intervals"} <= manifest["metrics"].keys()

    shown = flat(ok(show_one).stdout)
    assert "cli-model version 1" in shown
    assert "window 24, horizon 6, frequency h" in shown
    assert manifest["weights"]["sha256"][:12] in shown
    assert "seasonal naive" in shown and "Prediction intervals" in shown

    moved = json.loads(
        ok(run_cli(registry_dir, "models", "alias", "cli-model", "staging", "1", "--json")).stdout
    )
    assert moved == {"name": "cli-model", "alias": "staging", "version": 1}

    staged, missing_alias = run_parallel(
        run_cli, registry_dir, ("models", "show", "cli-model@staging"), ("models", "show", "cli-model@canary")
    )
    assert "cli-model version 1" in flat(ok(staged).stdout)
    assert missing_alias.returncode == 2
    assert "no alias 'canary'; known aliases: ['production', 'staging']" in flat(missing_alias.stderr)


def test_train_json_prints_name_version_and_metrics(run_cli, csv_path, registry_dir):
    result = ok(run_cli(registry_dir, "train", str(csv_path), "--name", "json-model", *TRAIN_ARGS, "--json"))
    payload = json.loads(result.stdout)  # nothing but the JSON document on stdout
    assert (payload["name"], payload["version"]) == ("json-model", 1)
    metrics = payload["metrics"]
    assert metrics["season"] == 24
    assert {"mae", "rmse", "mase_seasonal", "mase_random_walk"} <= metrics["model"].keys()
    assert set(metrics["baselines"]) == {"seasonal_naive", "random_walk"}
    assert 0.0 <= metrics["intervals"]["80.0"]["coverage"] <= 1.0


def test_parquet_input_trains(run_cli, tmp_path, registry_dir):
    path = tmp_path / "load.parquet"
    hourly_sine(seed=4).to_parquet(path)
    result = ok(run_cli(registry_dir, "train", str(path), "--name", "pq", *TRAIN_ARGS, "--json"))
    assert json.loads(result.stdout)["version"] == 1
    registry = open_registry(Settings(models_dir=registry_dir))
    try:
        manifest = registry.read_manifest(registry.resolve("pq"))
    finally:
        registry.database.dispose()
    assert manifest.data.source == "load.parquet"
    assert manifest.data.rows == 900


def test_errors_exit_2_with_a_message_naming_the_problem(run_cli, csv_path, tmp_path, registry_dir):
    frame = hourly_sine()
    frame["reading"] = "high"
    text_path = tmp_path / "text.csv"
    frame.to_csv(text_path, index=False)
    # create the registry first: concurrent first opens of a fresh SQLite registry race in create_schema
    open_registry(Settings(models_dir=registry_dir)).database.dispose()

    missing, text, unknown = run_parallel(
        run_cli,
        registry_dir,
        ("train", str(csv_path), "--name", "x", "--value-col", "price", *TRAIN_ARGS),
        ("train", str(text_path), "--name", "x", "--value-col", "reading", *TRAIN_ARGS),
        ("models", "show", "nope"),
    )

    assert missing.returncode == 2, missing.stderr
    message = flat(missing.stderr)
    assert 'column "price" not found' in message
    assert "available columns: timestamp, value" in message

    assert text.returncode == 2, text.stderr
    assert 'column "reading" has 900 non-numeric values, first at row 1: "high"' in flat(text.stderr)

    assert unknown.returncode == 2, unknown.stderr
    assert "model 'nope' is not registered" in flat(unknown.stderr)

    assert "Traceback" not in missing.stderr + text.stderr + unknown.stderr
    registry = open_registry(Settings(models_dir=registry_dir))
    try:
        assert registry.list_models() == []
    finally:
        registry.database.dispose()


def strict_json(text: str) -> Any:
    """json.loads that refuses NaN and Infinity, which are not JSON."""

    def refuse(constant: str) -> NoReturn:
        raise ValueError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


def test_mostly_zero_series_trains_and_registers_with_undefined_mase_as_null(run_cli, tmp_path, registry_dir):
    """An intermittent series all zero over its training rows (the MASE scale is 0) used to crash with
    "Out of range float values are not JSON compliant: nan" and register nothing."""
    values = np.zeros(600)
    values[450::7] = 3.0  # counts only after the training rows: 96% zeros
    frame = pd.DataFrame({"timestamp": pd.date_range("2024-01-01", periods=600, freq="h"), "value": values})
    path = tmp_path / "intermittent.csv"
    frame.to_csv(path, index=False)

    trained = ok(run_cli(registry_dir, "train", str(path), "--name", "sparse", *TRAIN_ARGS, "--json"))
    model = strict_json(trained.stdout)["metrics"]["model"]
    assert model["mase_seasonal"] is None and model["mase_random_walk"] is None
    assert "lag 1" in model["notes"]["mase_random_walk"] and "is 0" in model["notes"]["mase_random_walk"]
    assert np.isfinite([model["mae"], model["rmse"]]).all()

    shown_json, shown = run_parallel(
        run_cli, registry_dir, ("models", "show", "sparse", "--json"), ("models", "show", "sparse")
    )
    assert strict_json(ok(shown_json).stdout)["metrics"]["baselines"]["random_walk"]["mase_seasonal"] is None
    table = flat(ok(shown).stdout)
    assert "n/a" in table
    assert "MASE (random walk): undefined: the training rows repeat exactly at lag 1" in table
    assert re.search(r"\bnan\b|\binf\b", table, re.IGNORECASE) is None

    version_dir = registry_dir / "sparse" / "1"
    manifest = strict_json((version_dir / "manifest.json").read_text())
    assert manifest["metrics"]["model"]["mase_seasonal"] is None
    assert (version_dir / "report.png").stat().st_size > 0
