"""Our detector on a NAB-layout corpus under NAB's rules, scored with app/evaluation/nab.py.

Rules: each file is seen once, in time order. Before the first scored row only the probationary rows (first 15 %,
at most 750) are used to fit the model; after that it keeps learning from rows already scored (as NAB allows);
every row's score uses only that row and earlier ones; one configuration for every file.

Detector (one configuration, `DetectorConfig`):
1. A small GRU (app.forecasting, trained with app.training.trainer.fit on the probationary rows) forecasts
   quantiles of the next first difference from a window of clipped, globally scaled differences plus
   time-of-day / day-of-week inputs. Online refitting: the later rows are cut into chunks (`refit_every`, at
   least the probation length); before each chunk the GRU is fine-tuned for a few short epochs on all rows
   before it, then forecasts the chunk causally (row t only sees rows < t). Scaling and clipping stay as
   fitted on probation.
2. `SpreadResidualScorer` turns the one-step residual into a magnitude (spread floored at the robust scale of
   the probationary differences, so integer-valued series with many zero changes do not explode).
3. A second, model-free raw score: the distance of each value from the median of the 1000 values before it
   (level changes that stay inside the range, which a difference forecaster absorbs after one row).
4. `AnomalyLikelihood` (bench/nab_postprocess.py), per raw score: rank among recent raw scores, short-term
   mean of the ranks, Gaussian tail against the long-run distribution of that mean, on a log scale; the
   larger of the channels counts. A third and fourth channel rank the signed residual itself, once upwards and
   once downwards (`signed_likelihood`): a run of small residuals all on one side (a slow drift, a day that
   stays below its usual level) raises the mean rank of one side even when every magnitude is ordinary, and
   the two sides are judged separately. `PersistenceGate` then damps such a likelihood alarm until the
   likelihood has been "very unlikely" on at least `persist_count` of the last `persist_window` rows: brief
   excursions of the short mean were mostly false positives.
5. Sustained regimes: the forecast residual is scored a second time with a long mean of the ranks
   (`long_smoothing` rows): a burst of volatility, denser spikes, a day that does not follow the usual daily
   shape. The long mean varies much less under normal behaviour, so a lasting shift of moderately unusual
   residuals reaches a small tail probability. It needs many rows of evidence by construction, so it bypasses
   the persistence gate; the largest likelihood counts.
6. `RangeBreak` (value outside the range of all earlier values, widened by 2 % of that range) scores 1.
7. Seasonal context: |mean of x_t - x_{t - season}| over the last `season_lead` rows (season = one day of
   rows, or a week for daily data) outside the widened range of all earlier such means scores 1 (`RangeBreak`
   again). It catches pattern anomalies that stay in range: a flat stretch where a daily cycle should be, a
   missing jump.
8. `RunSuppressor` keeps only the first row of a run of very unlikely rows, or a row at least `escalation`
   above the run's peak score (a range break inside a run of moderate likelihood alarms).

    python bench/nab.py [--data ../shared/data/nab/data] [--labels .../combined_windows.json] [--out DIR]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from nab_postprocess import (  # bench/nab_postprocess.py (this folder is on sys.path)
    AnomalyLikelihood,
    PersistenceGate,
    RangeBreak,
    RunSuppressor,
)

from app.anomaly.residuals import SpreadResidualScorer
from app.evaluation.nab import (
    CorpusReport,
    align_results,
    evaluate_corpus,
    load_corpus,
    load_results,
    load_windows,
    probation_rows,
)
from app.forecasting.forecaster import Forecaster, ForecasterSpec
from app.forecasting.network import NetworkConfig
from app.forecasting.scaling import Scaling
from app.forecasting.windows import SplitBounds
from app.training.config import TrainingConfig
from app.training.dataset import WindowDataset
from app.training.trainer import fit

NAB_ROOT = Path(__file__).resolve().parents[2] / "shared" / "data" / "nab"
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "nab"


@dataclass(frozen=True)
class DetectorConfig:
    window: int = 32
    horizon: int = 1
    hidden: int = 32
    epochs: int = 40
    patience: int = 6
    lr: float = 3e-3
    batch_size: int = 64
    val_fraction: float = 0.2  # of the probationary rows, for early stopping
    clip_sigmas: float = 6.0  # input differences are clipped at this many robust standard deviations
    spread_floor: float = 1.0  # forecast spread floor, in robust standard deviations of the differences
    level_window: int = 1000  # rows whose median is the reference level of the level-deviation channel
    season_lead: int = 12  # rows over which the seasonal difference x_t - x_{t - season} is averaged
    season_margin: float = 0.2  # range widening for the seasonal-residual range break
    history: int = 1000  # raw scores a magnitude is ranked against
    smoothing: int = 10  # ranks in the short-term mean
    signed_likelihood: bool = True  # also rank the signed residual, up and down separately (gated like above)
    long_smoothing: int = 50  # ranks in the long-term mean of a second residual likelihood (0 = off)
    stats_history: int = 2000  # short-term means the current one is compared with
    decades: float = 10.0
    range_margin: float = 0.02
    run_level: float = 0.3  # score of a "very unlikely" row: p = 1e-3 with decades = 10
    persist_window: int = 10  # a short-mean likelihood alarm needs `persist_count` very unlikely rows among
    persist_count: int = 5  # the last `persist_window` (this one included; 1 = off), else it is damped by
    persist_damping: float = 0.5  # `persist_damping`
    cooldown: int = 100
    damping: float = 0.0
    escalation: float = 0.5  # an alarm this far above its run's peak is kept inside the run (0 = never)
    refit_every: int = 500  # chunk length (at least the probation); the GRU is fine-tuned on all earlier rows
    refit_epochs: int = 3  # fine-tuning epochs before each chunk (0 = frozen after probation)
    refit_batches: int = 20  # batches per fine-tuning epoch, sampled from all rows before the chunk
    refit_lr: float = 1e-3
    seed: int = 0


def calendar_for(timestamps: pd.DatetimeIndex) -> list[str]:
    step = float(np.median(np.diff(timestamps.values).astype("timedelta64[s]").astype(np.float64)))
    if step < 86_400:
        return ["hour_of_day", "day_of_week"]
    return ["day_of_week"]


def season_rows(timestamps: pd.DatetimeIndex) -> int:
    """Rows per day for sub-daily sampling, else 7 (a week of daily rows); from the given timestamps only."""
    step = float(np.median(np.diff(timestamps.values).astype("timedelta64[s]").astype(np.float64)))
    if 0 < step < 86_400:
        return max(2, round(86_400 / step))
    return 7


def seasonal_residual(values: np.ndarray, season: int, lead: int) -> np.ndarray:
    """|mean of x_t - x_{t - season}| over the `lead` rows ending at t (NaN where undefined): [N] -> [N].

    The signed mean (not the mean magnitude) measures a shift against the same rows one season earlier."""
    difference = values - pd.Series(values).shift(season).to_numpy()
    return np.abs(pd.Series(difference).rolling(lead, min_periods=lead).mean().to_numpy())


def robust_scale(values: np.ndarray) -> float:
    mad = 1.4826 * float(np.median(np.abs(values - np.median(values))))
    return max(mad, 0.1 * float(values.std()), 1e-9)


def forecast_differences(
    values: np.ndarray, timestamps: pd.DatetimeIndex, probation: int, config: DetectorConfig
) -> tuple[np.ndarray, np.ndarray, tuple[float, ...]]:
    """First differences [N] and the quantile forecasts of the next `horizon` differences from each origin:
    [N, H, Q], row o forecasting differences o .. o + H - 1 from rows < o (NaN where no forecast exists)."""
    diffs = np.diff(values, prepend=values[0])
    bound = config.clip_sigmas * robust_scale(diffs[1:probation])
    clipped = np.clip(diffs, -bound, bound).astype(np.float32)
    features = calendar_for(timestamps[:probation])  # sampling interval from probationary rows only
    val_rows = max(int(probation * config.val_fraction), 16)
    # short files: shrink the input window so that at least ~2/3 of the training rows are forecast origins
    window = max(4, min(config.window, (probation - val_rows) // 3))
    train_config = TrainingConfig(
        window=window, horizon=config.horizon, hidden=config.hidden, layers=1, dropout=0.0,
        epochs=config.epochs, batch_size=config.batch_size, lr=config.lr, patience=config.patience,
        seed=config.seed,
    )  # fmt: skip
    bounds = SplitBounds(train_end=probation - val_rows, val_end=probation, length=len(values))
    stamps = timestamps.values
    dataset = WindowDataset.build([("s", clipped, stamps)], [bounds], window, config.horizon, features)
    spec = ForecasterSpec(
        window=window,
        horizon=config.horizon,
        frequency="auto",
        scaling=Scaling.fit("global", torch.from_numpy(clipped[1:probation])),
        network=NetworkConfig("gru", 1, config.hidden, 1, config.horizon, len(train_config.quantiles)),
        quantiles=train_config.quantiles,
        calendar_features=tuple(features),
    )
    forecaster = Forecaster.create(spec, seed=config.seed)
    fit(forecaster, dataset, train_config)
    predicted = forecaster.predict_rolling(clipped[:-1], stamps[:-1])  # row i: origin W + i
    quantiles = np.full((len(values), config.horizon, len(spec.quantiles)), np.nan)
    quantiles[window:] = predicted
    # online refitting: before each later chunk, fine-tune on all rows before it (NAB allows learning from rows
    # already scored), then forecast the chunk causally; scaling and clipping stay as fitted on probation
    step = max(probation, config.refit_every)
    if config.refit_epochs > 0:
        refit_config = replace(
            train_config, epochs=config.refit_epochs, patience=config.refit_epochs, lr=config.refit_lr,
            max_batches_per_epoch=config.refit_batches,
        )  # fmt: skip
        for start in range(probation + step, len(values), step):
            end = min(start + step, len(values))
            refit_bounds = SplitBounds(train_end=start - val_rows, val_end=start, length=len(values))
            refit_data = WindowDataset.build(
                [("s", clipped, stamps)], [refit_bounds], window, config.horizon, features
            )
            fit(forecaster, refit_data, refit_config)
            # rows start .. end - 1, each from the `window` rows before it
            quantiles[start:end] = forecaster.predict_rolling(
                clipped[start - window : end - 1], stamps[start - window : end - 1]
            )
    return diffs, quantiles, spec.quantiles


def likelihood_scores(raw: np.ndarray, probation: int, smoothing: int, config: DetectorConfig) -> np.ndarray:
    """`AnomalyLikelihood` of the post-probation raw scores, warmed up on the probationary ones: [N] -> [N - P]."""
    likelihood = AnomalyLikelihood(config.history, smoothing, config.stats_history, config.decades)
    likelihood.warm_up(raw[:probation])
    return likelihood.score(raw[probation:])


def detect(values: np.ndarray, timestamps: pd.DatetimeIndex, config: DetectorConfig) -> np.ndarray:
    """Anomaly score in [0, 1] per row (0 during probation)."""
    n = len(values)
    probation = probation_rows(n)
    diffs, quantiles, levels = forecast_differences(values, timestamps, probation, config)
    floor = config.spread_floor * robust_scale(diffs[1:probation])
    scorer = SpreadResidualScorer(absolute_floor=floor)
    residuals = scorer.score(diffs, quantiles[:, 0, :], levels)
    magnitude = residuals.magnitude  # [N], NaN without a forecast

    # distance of each value from the median of the `level_window` values before it (NaN for the first rows)
    reference = pd.Series(values).shift(1).rolling(config.level_window, min_periods=50).median().to_numpy()
    deviation = np.abs(values - reference)

    raws = [magnitude, deviation]
    if config.signed_likelihood:  # one-sided runs of ordinary-sized residuals (a drift, a low day)
        raws += [residuals.signed, -residuals.signed]
    channels = [likelihood_scores(raw, probation, config.smoothing, config) for raw in raws]
    gate = PersistenceGate(
        config.run_level, config.persist_window, config.persist_count, config.persist_damping
    )
    combined = gate.apply(np.max(channels, axis=0))
    if config.long_smoothing > 0:  # sustained regimes; persistent by construction, so not gated
        sustained = likelihood_scores(magnitude, probation, config.long_smoothing, config)
        combined = np.maximum(combined, sustained)

    breaker = RangeBreak(config.range_margin)
    breaker.warm_up(values[:probation])
    combined = np.maximum(combined, breaker.score(values[probation:]))

    # pattern anomalies that stay inside the value range (a flat stretch where a daily cycle should be, a missing
    # jump): the recent seasonal residual exceeds the widened range of all earlier ones
    seasonal = seasonal_residual(values, season_rows(timestamps[:probation]), config.season_lead)
    known = np.isfinite(seasonal)
    season_breaker = RangeBreak(config.season_margin)
    season_breaker.warm_up(seasonal[:probation][known[:probation]])
    season_break = np.zeros(n - probation)
    season_break[known[probation:]] = season_breaker.score(seasonal[probation:][known[probation:]])
    combined = np.maximum(combined, season_break)

    escalation = config.escalation if config.escalation > 0 else None
    suppressor = RunSuppressor(config.run_level, config.cooldown, config.damping, escalation)
    scores = np.zeros(n)
    scores[probation:] = suppressor.apply(combined)
    return scores


def run_corpus(data_dir: Path, out_dir: Path, config: DetectorConfig, verbose: bool) -> float:
    started = time.perf_counter()
    files = sorted(data_dir.glob("*/*.csv"))
    if not files:
        raise SystemExit(f"no <category>/<file>.csv files under {data_dir}")
    for path in files:
        file_start = time.perf_counter()
        frame = pd.read_csv(path)
        timestamps = pd.DatetimeIndex(pd.to_datetime(frame["timestamp"]))
        values = frame["value"].to_numpy(dtype=np.float64)
        scores = detect(values, timestamps, config)
        target = out_dir / path.parent.name / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame(
            {"timestamp": frame["timestamp"], "value": frame["value"], "anomaly_score": scores}
        ).to_csv(target, index=False)
        if verbose:
            print(
                f"  {path.parent.name}/{path.name}: {len(values)} rows, {time.perf_counter() - file_start:.1f}s"
            )
    return time.perf_counter() - started


def score_corpus(data_dir: Path, labels: Path, out_dir: Path) -> CorpusReport:
    windows = load_windows(labels)
    corpus = load_corpus(data_dir)
    results = align_results(load_results(out_dir), corpus)
    return evaluate_corpus(results, {name: windows.get(name, []) for name in corpus})


def print_report(report: CorpusReport, seconds: float) -> None:
    print(f"\n{report.n_files} files, {report.n_windows} windows, detector run {seconds:.0f}s")
    print(f"{'profile':<20} {'score':>7} {'threshold':>10} {'detected':>9}")
    for name, profile in report.profiles.items():
        detected = sum(f.windows_detected for f in profile.files.values())
        print(
            f"{name:<20} {profile.normalized_score:>7.1f} {profile.threshold:>10.4f} {detected:>5}/{report.n_windows}"
        )
    pa = report.point_adjusted
    print(f"point-adjusted (standard threshold): P={pa.precision:.3f} R={pa.recall:.3f} F1={pa.f1:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=NAB_ROOT / "data")
    parser.add_argument("--labels", type=Path, default=NAB_ROOT / "labels" / "combined_windows.json")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--score-only", action="store_true", help="score existing results in --out")
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="override DetectorConfig")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = DetectorConfig()
    for item in args.set:
        key, _, raw = item.partition("=")
        config = replace(config, **{key: type(getattr(config, key))(raw)})
    seconds = 0.0
    if not args.score_only:
        seconds = run_corpus(args.data, args.out, config, verbose=not args.quiet)
    print_report(score_corpus(args.data, args.labels, args.out), seconds)


if __name__ == "__main__":
    main()
