"""PNG plots from the CLI: the training report (`train`, `models show --plot`) and `detect --plot`."""

from __future__ import annotations

import struct
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from app.cli.plots import _residual_panel, plot_training_report
from app.registry.factory import open_registry
from app.registry.manifest import ResidualHistogram
from app.settings import Settings

pytestmark = pytest.mark.slow

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
REPORT_SIZE = (1200, 800)


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from the IHDR chunk, after checking the file is a non-trivial PNG."""
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, f"{path} is not a PNG"
    assert data[12:16] == b"IHDR"
    assert len(data) > 10_000, f"{path} is suspiciously small ({len(data)} bytes)"
    return struct.unpack(">II", data[16:24])


def ok(result):
    assert result.returncode == 0, (
        f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    )
    return result


def hourly_sine(points: int, spike_at: int | None = None) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    hours = np.arange(points)
    values = 10.0 + 3.0 * np.sin(2 * np.pi * hours / 24) + rng.normal(0, 0.3, points)
    if spike_at is not None:
        values[spike_at] += 40.0
    return pd.DataFrame({"timestamp": pd.date_range("2024-01-01", periods=points, freq="h"), "value": values})


def test_train_writes_a_report_and_models_show_rebuilds_it(run_cli, tmp_path):
    registry_dir = tmp_path / "models"
    data = tmp_path / "load.csv"
    hourly_sine(900).to_csv(data, index=False)
    args = ("--name", "plotted", "--epochs", "2", "--window", "24", "--horizon", "6", "--hidden", "8")
    trained = ok(run_cli(registry_dir, "train", str(data), *args))
    report = registry_dir / "plotted" / "1" / "report.png"
    assert "report plot written to" in " ".join(trained.stdout.split())
    assert str(report) in trained.stdout.replace("\n", "")
    assert png_size(report) == REPORT_SIZE

    manifest = open_registry(Settings(models_dir=registry_dir)).read_manifest(
        open_registry(Settings(models_dir=registry_dir)).resolve("plotted")
    )
    assert manifest.report is not None
    sample = manifest.report.test_sample.model_dump()
    assert 0 < len(sample["timestamps"]) <= 200
    lengths = {len(sample[key]) for key in ("actual", "median", "lower80", "upper80", "lower95", "upper95")}
    assert lengths == {len(sample["timestamps"])}
    assert all(lo <= hi for lo, hi in zip(sample["lower95"], sample["lower80"], strict=True))
    residuals = manifest.report.residuals.model_dump()
    assert len(residuals["counts"]) + 1 == len(residuals["edges"]) and sum(residuals["counts"]) > 0
    # the training-time calibration's thresholds stay in the manifest format, recorded only (not drawn)
    assert set(residuals["thresholds"]) == {"0.5", "0.7", "0.9"}

    shown_png = tmp_path / "out" / "shown.png"
    shown = ok(run_cli(registry_dir, "models", "show", "plotted@1", "--plot", str(shown_png)))
    assert "report plot written to" in " ".join(shown.stdout.split())
    assert png_size(shown_png) == REPORT_SIZE


def test_detect_plot_and_show_plot_on_the_tiny_registry(run_cli, models_dir, tmp_path):
    data = tmp_path / "spiky.csv"
    hourly_sine(300, spike_at=250).to_csv(data, index=False)
    detect_png, show_png = tmp_path / "detect.png", tmp_path / "show.png"
    commands = [
        (
            "detect",
            str(data),
            "--model",
            "tiny",
            "--out",
            str(tmp_path / "scores.csv"),
            "--plot",
            str(detect_png),
        ),
        ("models", "show", "tiny@2", "--plot", str(show_png), "--json"),
    ]
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda args: run_cli(models_dir, *args), commands))
    for result in results:
        ok(result)
    assert png_size(detect_png) == (1320, 352)  # one 12 x 3.2 inch panel at 110 dpi
    assert png_size(show_png) == REPORT_SIZE


def test_report_of_a_manifest_without_a_report_section(models_dir, tmp_path):
    """Versions trained before `report` existed still get loss curves and metrics, with notes for the rest."""
    registry = open_registry(Settings(models_dir=models_dir))
    manifest = registry.read_manifest(registry.resolve("tiny")).model_copy(update={"report": None})
    path = plot_training_report(manifest, tmp_path / "old.png")
    assert png_size(path) == REPORT_SIZE


def test_residual_panel_draws_the_histogram_and_no_flagging_thresholds() -> None:
    """Detection calibrates on the series it scores, so the report must not draw the training calibration's
    thresholds as if they were where points get flagged."""
    histogram = ResidualHistogram(
        unit="residual / forecast spread",
        edges=[-2.0, -1.0, 0.0, 1.0, 2.0],
        counts=[1, 5, 6, 2],
        thresholds={"0.5": 1.5, "0.7": 1.2, "0.9": None},
        calibration_points=14,
    )
    axis = Figure().subplots()  # no pyplot: nothing global to close
    _residual_panel(axis, histogram)
    assert len(axis.patches) == 4  # one bar per bin
    assert axis.get_lines() == []  # no threshold rules
    assert axis.get_legend() is None
