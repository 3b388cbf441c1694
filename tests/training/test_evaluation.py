"""Test metrics on intermittent series: a MASE whose scale is 0 is null with the reason, never NaN."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from app.forecasting.forecaster import Forecaster, ForecasterSpec
from app.forecasting.network import NetworkConfig
from app.forecasting.quantiles import DEFAULT_QUANTILES
from app.forecasting.scaling import Scaling
from app.forecasting.windows import SplitBounds
from app.registry.manifest import EvaluationMetrics
from app.training import evaluation
from app.training.dataset import WindowDataset
from app.training.evaluation import MaseScales, predict_origins

WINDOW, HORIZON, POINTS, SEASON = 24, 2, 400, 24


def busy(seed: int = 0) -> np.ndarray:
    """Mostly zeros with a few counts everywhere: intermittent, but with a non-zero naive scale."""
    rng = np.random.default_rng(seed)
    return np.where(rng.random(POINTS) < 0.1, rng.integers(1, 6, POINTS), 0).astype(np.float64)


def idle_while_training() -> np.ndarray:
    """All zeros over the training rows (70%), counts only later: every naive scale is 0."""
    values = np.zeros(POINTS)
    values[int(POINTS * 0.75) :: 7] = 3.0
    return values


def dataset_of(**series: np.ndarray) -> WindowDataset:
    stamps = pd.date_range("2024-01-01", periods=POINTS, freq="h").to_numpy()
    return WindowDataset.build(
        [(name, values, stamps) for name, values in series.items()],
        [SplitBounds.from_fractions(POINTS, 0.15, 0.15) for _ in series],
        WINDOW,
        HORIZON,
        [],
    )


def metrics_of(dataset: WindowDataset) -> EvaluationMetrics:
    """An untrained tiny forecaster is enough: the point is the scales, not the accuracy."""
    spec = ForecasterSpec(
        window=WINDOW,
        horizon=HORIZON,
        frequency="h",
        scaling=Scaling(mode="instance", global_loc=0.0, global_scale=1.0, floor=1e-3),
        network=NetworkConfig(
            cell="gru", input_size=1, hidden_size=8, num_layers=1, horizon=HORIZON, num_quantiles=9
        ),
        quantiles=DEFAULT_QUANTILES,
    )
    forecaster = Forecaster.create(spec, seed=0)
    predictions = predict_origins(forecaster, dataset, dataset.origins("test"))
    return evaluation.test_metrics(forecaster, dataset, predictions, SEASON)


def strict_json(metrics: EvaluationMetrics) -> dict[str, object]:
    def refuse(constant: str) -> None:
        raise ValueError(f"{constant} in JSON")

    parsed: dict[str, object] = json.loads(json.dumps(metrics.model_dump(mode="json")), parse_constant=refuse)
    return parsed


def test_series_idle_over_its_training_rows_has_no_mase_and_says_why() -> None:
    with np.errstate(divide="raise", invalid="raise"):
        metrics = metrics_of(dataset_of(idle=idle_while_training()))

    for name, accuracy in metrics.by_forecaster().items():
        assert accuracy.mase_seasonal is None and accuracy.mase_random_walk is None, name
        assert np.isfinite([accuracy.mae, accuracy.rmse]).all()
        assert accuracy.notes["mase_seasonal"].startswith(
            "undefined: the training rows repeat exactly at lag 24"
        )
        assert "lag 1" in accuracy.notes["mase_random_walk"]
    model = strict_json(metrics)["model"]
    assert isinstance(model, dict) and model["mase_seasonal"] is None and "notes" in model


def test_global_model_mase_leaves_out_the_idle_series_and_names_it() -> None:
    dataset = dataset_of(busy=busy(), idle=idle_while_training())
    scales = MaseScales.of(dataset, "mase_seasonal", SEASON)
    assert np.isfinite(scales.per_series[0]) and np.isnan(scales.per_series[1])
    assert scales.note is not None and scales.note.startswith("over 1 of 2 series; left out 'idle'")

    metrics = metrics_of(dataset)
    for accuracy in metrics.by_forecaster().values():
        assert accuracy.mase_seasonal is not None and np.isfinite(accuracy.mase_seasonal)
        assert accuracy.mase_random_walk is not None and np.isfinite(accuracy.mase_random_walk)
        assert "left out 'idle'" in accuracy.notes["mase_seasonal"]
    strict_json(metrics)


def test_intermittent_series_with_a_scale_has_no_notes() -> None:
    metrics = metrics_of(dataset_of(busy=busy()))
    assert metrics.model.notes == {} and metrics.model.mase_seasonal is not None
    assert "notes" not in strict_json(metrics)["model"]  # type: ignore[operator]


@pytest.mark.parametrize("lag", [1, SEASON])
def test_mase_scales_of_a_busy_series_are_its_naive_mae(lag: int) -> None:
    values = busy()
    dataset = dataset_of(busy=values)
    train = values[: dataset.series[0].bounds.train_end]
    expected = np.mean(np.abs(train[lag:] - train[:-lag]))
    scales = MaseScales.of(dataset, "mase_random_walk", lag)
    assert scales.note is None and scales.per_series[0] == pytest.approx(expected, rel=1e-6)
