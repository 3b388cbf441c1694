"""Per-series test metrics of a global model: each series' MAE/RMSE/MASE next to its own naive baselines."""

from __future__ import annotations

import numpy as np

from app.registry.manifest import EvaluationMetrics

from .test_evaluation import busy, dataset_of, idle_while_training, metrics_of, strict_json


def test_a_global_model_reports_every_series_next_to_its_baselines() -> None:
    metrics = metrics_of(dataset_of(a=busy(0), b=busy(1) * 100.0, idle=idle_while_training()))

    assert metrics.per_series is not None
    assert [s.id for s in metrics.per_series] == ["a", "b", "idle"]
    assert sum(s.test_windows for s in metrics.per_series) == metrics.test_windows
    weights = np.array([s.test_windows for s in metrics.per_series], dtype=np.float64)
    pooled = np.average([s.model.mae for s in metrics.per_series], weights=weights)
    assert np.isclose(pooled, metrics.model.mae)  # the pooled MAE is the window-weighted per-series MAE
    a, b, idle = metrics.per_series
    assert b.model.mae > 10 * a.model.mae  # scales differ: exactly what pooled metrics hide
    for series in (a, b):
        assert series.model.mase_seasonal is not None and series.model.notes == {}
        assert series.baselines.seasonal_naive.mase_seasonal is not None
    assert idle.model.mase_seasonal is None and idle.model.mase_random_walk is None
    assert idle.model.notes["mase_seasonal"].startswith("undefined: ")
    assert strict_json(metrics)["per_series"][2]["id"] == "idle"  # type: ignore[index]


def test_per_series_mase_uses_the_series_own_scale() -> None:
    one = metrics_of(dataset_of(a=busy(0)))
    both = metrics_of(dataset_of(a=busy(0), b=busy(1) * 100.0))
    assert both.per_series is not None
    first = both.per_series[0]
    # the same untrained network gives series "a" the same forecasts alone or next to "b"
    assert np.isclose(first.model.mae, one.model.mae)
    assert first.model.mase_seasonal is not None and one.model.mase_seasonal is not None
    assert np.isclose(first.model.mase_seasonal, one.model.mase_seasonal)
    assert np.isclose(first.baselines.random_walk.mae, one.baselines.random_walk.mae)


def test_single_series_models_and_older_manifests_have_no_per_series_field() -> None:
    metrics = metrics_of(dataset_of(a=busy(0)))
    assert metrics.per_series is None
    dumped = metrics.model_dump(mode="json")
    assert "per_series" not in dumped  # unchanged bytes for single-series manifests
    assert EvaluationMetrics.model_validate(dumped).per_series is None
