"""What `tswatch train` prints about its data and per series: notices, filled gaps, per-series test metrics."""

from __future__ import annotations

from collections.abc import Sequence

from rich.table import Table

from app.registry.manifest import SeriesAccuracy
from app.timestamps import to_message_text
from app.training.data.gaps import GapReport

SHOWN = 10  # rows of a long table shown at each end (per-series) or in all (gaps)
GAP_METHODS = {"interpolate": "linear in time", "ffill": "last value carried forward", "error": "refused"}


def _scaled(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def gaps_table(gaps: Sequence[GapReport], policy: str) -> Table | None:
    """One row per series whose gaps were filled (largest fraction first); None when nothing was filled."""
    if not gaps:
        return None
    ranked = sorted(gaps, key=lambda gap: (-gap.fraction, gap.series_id))
    more = len(ranked) - SHOWN
    table = Table(
        title=f"Filled gaps ({GAP_METHODS.get(policy, policy)})",
        caption=f"... and {more} more series with gaps (all in manifest.json)" if more > 0 else None,
        caption_justify="left",
    )
    for column in ("series", "filled", "longest", "fraction", "first gap", "dropped edge rows"):
        table.add_column(column, justify="left" if column in ("series", "first gap") else "right")
    for gap in ranked[:SHOWN]:
        table.add_row(
            gap.series_id,
            str(gap.missing_points),
            str(gap.largest_gap),
            f"{gap.fraction:.1%}",
            "-" if gap.first_gap is None else to_message_text(gap.first_gap),
            str(gap.trimmed_points),
        )
    return table


def _versus_naive(series: SeriesAccuracy) -> float:
    """The model's MAE over the better naive baseline's (below 1: the model wins)."""
    best = min(series.baselines.seasonal_naive.mae, series.baselines.random_walk.mae)
    if best > 0:
        return series.model.mae / best
    return 1.0 if series.model.mae == 0 else float("inf")


def per_series_table(per_series: Sequence[SeriesAccuracy] | None) -> Table | None:
    """Each series' test metrics next to its naive baselines, worst against them first; with many series the
    `SHOWN` worst and best. None for a single-series model."""
    if not per_series:
        return None
    ranked = sorted(per_series, key=lambda series: (-_versus_naive(series), series.id))
    hidden = len(ranked) - 2 * SHOWN
    notes = [
        "MASE: seasonal; naive columns: the baseline's MAE; vs naive: MAE / the better naive MAE (below 1: "
        "the model wins)"
    ]
    if hidden > 0:
        notes.append(f"{hidden} series in between not shown (all in manifest.json and --json)")
    table = Table(
        title=f"Per series (test split, {len(ranked)} series, worst against naive first)",
        caption="\n".join(notes),
        caption_justify="left",
    )
    columns = ("series", "windows", "MAE", "RMSE", "MASE", "seasonal naive", "random walk")
    for column in (*columns, "vs naive"):
        table.add_column(column, justify="left" if column == "series" else "right")
    for position, series in enumerate(ranked):
        if hidden > 0 and SHOWN <= position < len(ranked) - SHOWN:
            if position == SHOWN:
                table.add_row("...", *[""] * (len(columns)))
            continue
        table.add_row(
            series.id,
            str(series.test_windows),
            f"{series.model.mae:.4g}",
            f"{series.model.rmse:.4g}",
            _scaled(series.model.mase_seasonal),
            f"{series.baselines.seasonal_naive.mae:.4g}",
            f"{series.baselines.random_walk.mae:.4g}",
            f"{_versus_naive(series):.3f}",
        )
    return table
