"""`tswatch train --alias production` and `tswatch models alias` on a version worse than naive, through the real
console entry point: a yellow warning naming the baseline and both MAEs, the alias refused unless `--force`."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

Run = Callable[..., subprocess.CompletedProcess[str]]

# The plain network (no baseline to correct) for one epoch at a negligible learning rate stays near its random
# start, so on a noise-free daily cycle, which seasonal naive forecasts exactly, the model must lose.
UNTRAINED = (
    *("--baseline", "none", "--window", "48", "--horizon", "6", "--hidden", "8"),
    *("--epochs", "1", "--lr", "1e-7"),
)


def flat(text: str) -> str:
    return " ".join(text.split())


def pure_daily_cycle(path: Path, points: int = 600) -> Path:
    hours = np.arange(points)
    values = 10.0 + 3.0 * np.sin(2 * np.pi * hours / 24)
    stamps = pd.date_range("2024-01-01", periods=points, freq="h")
    pd.DataFrame({"timestamp": stamps, "value": values}).to_csv(path, index=False)
    return path


def test_a_model_worse_than_naive_is_flagged_and_kept_from_production(run_cli: Run, tmp_path: Path) -> None:
    registry_dir = tmp_path / "models"
    csv = str(pure_daily_cycle(tmp_path / "cycle.csv"))
    trained = run_cli(registry_dir, "train", csv, "--name", "guard", *UNTRAINED, "--alias", "production")
    assert trained.returncode == 1, trained.stderr
    out, err = flat(trained.stdout), flat(trained.stderr)
    assert "Registered guard version 1" in out  # registered, only the alias is refused
    assert "warning: guard version 1 is worse than naive: it loses to seasonal naive (test MAE" in err
    assert "error: alias 'production' was not pointed at guard version 1" in err
    assert "tswatch models alias guard production 1 --force" in err

    with ThreadPoolExecutor(max_workers=2) as pool:
        listed, shown, refused = pool.map(
            lambda args: run_cli(registry_dir, *args),
            [
                ("models", "list", "--json"),
                ("models", "show", "guard@1"),
                ("models", "alias", "guard", "production", "1"),
            ],
        )
    assert json.loads(listed.stdout)[0]["aliases"] == {}
    assert "worse than naive: it loses to seasonal naive" in flat(shown.stderr)
    assert refused.returncode == 2
    assert "version 1 of model 'guard' loses to seasonal naive (test MAE" in flat(refused.stderr)
    assert "--force" in refused.stderr

    staged = run_cli(registry_dir, "models", "alias", "guard", "staging", "1", "--json")  # not guarded
    assert staged.returncode == 0, staged.stderr
    forced = run_cli(registry_dir, "models", "alias", "guard", "production", "1", "--force", "--json")
    assert forced.returncode == 0, forced.stderr
    assert json.loads(forced.stdout) == {"name": "guard", "alias": "production", "version": 1}

    again = run_cli(
        registry_dir,
        "train",
        csv,
        "--name",
        "guard",
        *UNTRAINED,
        "--alias",
        "production",
        "--force",
        "--json",
    )
    assert again.returncode == 0, again.stderr
    payload = json.loads(again.stdout)
    assert payload["version"] == 2 and payload["refused_alias"] is None
    assert payload["metrics"]["loses_to"][0] == "seasonal_naive"
    [loss, *_] = payload["loses_to"]
    assert loss["baseline"] == "seasonal_naive" and loss["model_mae"] > loss["baseline_mae"]
    assert "worse than naive" in flat(again.stderr)
    listed = run_cli(registry_dir, "models", "list", "--json")
    assert json.loads(listed.stdout)[0]["aliases"] == {"production": 2, "staging": 1}
