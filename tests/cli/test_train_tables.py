"""The tables `tswatch train` prints about filled gaps and per-series metrics (no training needed)."""

import pandas as pd
from rich.console import Console

from app.cli.train_tables import SHOWN, gaps_table, per_series_table
from app.registry.manifest import Accuracy, Baselines, SeriesAccuracy
from app.training.data.gaps import GapReport


def rendered(table: object) -> str:
    console = Console(width=200, record=True)
    console.print(table)
    return console.export_text()


def accuracy(mae: float) -> Accuracy:
    return Accuracy(mae=mae, rmse=mae * 1.2, mase_seasonal=mae / 2, mase_random_walk=None)


def series(index: int, mae: float) -> SeriesAccuracy:
    naive = Baselines(seasonal_naive=accuracy(1.0), random_walk=accuracy(2.0))
    return SeriesAccuracy(id=f"s{index:03d}", test_windows=10, model=accuracy(mae), baselines=naive)


def test_gaps_table_lists_the_most_gapped_series_first_and_counts_the_rest() -> None:
    gaps = [
        GapReport(
            f"g{k}", missing_points=k + 1, largest_gap=1, first_gap=pd.Timestamp("2024-01-02"), length=100
        )
        for k in range(SHOWN + 3)
    ]
    text = rendered(gaps_table(gaps, "interpolate"))
    assert "Filled gaps (linear in time)" in text
    assert text.index(f"g{SHOWN + 2}") < text.index(f"g{SHOWN + 1}")  # largest fraction first
    assert "g0 " not in text and "... and 3 more series with gaps" in text
    assert gaps_table([], "interpolate") is None


def test_per_series_table_shows_the_worst_and_best_against_naive() -> None:
    many = [series(k, mae=0.5 + k * 0.01) for k in range(2 * SHOWN + 5)]
    text = rendered(per_series_table(many))
    assert f"{len(many)} series, worst against naive first" in text
    last = len(many) - 1
    assert text.index(f"s{last:03d}") < text.index("s000")  # worst (highest MAE / naive) first
    assert f"s{SHOWN + 2:03d}" not in text and "5 series in between not shown" in text
    assert "0.740" in text  # s024: MAE 0.74 over the better naive MAE 1.0
    assert per_series_table(None) is None
