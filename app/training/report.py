"""A small, plottable summary of a training run stored in the manifest (`Manifest.report`).

It lets `tswatch models show NAME --plot` and the dashboard redraw the training report of any version without
the data: the last test-period one-step-ahead forecasts of the first series with their calibrated 80%/95%
bands, and a histogram of the validation residuals (in units of the forecast spread). The report draws no
flagging thresholds: detection calibrates its flags on the series it scores, not on this training-time
calibration. The histogram still records that calibration's thresholds (`ResidualHistogram.thresholds`, a field
of the stored manifest format) for the record; nothing draws or uses them.
"""

from __future__ import annotations

import numpy as np

from app.anomaly import CalibrationSet, SpreadResidualScorer, sensitivity_to_alpha
from app.anomaly.sensitivity import DEFAULT_SENSITIVITY
from app.forecasting.forecaster import ForecasterSpec
from app.forecasting.quantiles import interpolate_quantile
from app.registry.manifest import ForecastSample, ResidualHistogram, TrainingReport
from app.timestamps import datetime64_to_iso
from app.training.data.prepared import PreparedData
from app.training.dataset import WindowDataset
from app.training.evaluation import Predictions

TEST_SAMPLE_POINTS = 200
HISTOGRAM_BINS = 40
REPORT_SENSITIVITIES = (DEFAULT_SENSITIVITY, 0.7, 0.9)


def _floats(values: np.ndarray) -> list[float]:
    return [round(float(v), 6) for v in values]


def forecast_sample(
    spec: ForecasterSpec, dataset: WindowDataset, data: PreparedData, test: Predictions, points: int
) -> ForecastSample:
    """Lead-1 test forecasts of the first series (its last `points` origins)."""
    mask = dataset.series_of(test.origins) == 0
    origins = test.origins[mask][-points:]  # [P]
    quantiles = test.quantiles[mask][-points:, 0, :]  # [K, H, Q] -> [P, Q]
    series = data.series[0]
    stamps = series.timestamps[origins - dataset.series[0].offset]

    def band(level: float) -> list[float]:
        return _floats(interpolate_quantile(quantiles, spec.quantiles, level))

    return ForecastSample(
        series=series.id,
        timestamps=[datetime64_to_iso(s, "s") for s in stamps],
        actual=_floats(test.targets[mask][-points:, 0]),
        median=_floats(quantiles[:, spec.median_index]),
        lower80=band(0.1),
        upper80=band(0.9),
        lower95=band(0.025),
        upper95=band(0.975),
    )


def residual_histogram(
    spec: ForecasterSpec, validation: Predictions, calibration: CalibrationSet
) -> ResidualHistogram:
    """Signed spread residuals of the validation lead-1 forecasts, binned (plus the training-time calibration's
    thresholds, kept because the manifest format carries them)."""
    scores = SpreadResidualScorer().score(
        validation.targets[:, 0], validation.quantiles[:, 0, :], spec.quantiles
    )
    signed = scores.signed[np.isfinite(scores.signed)]  # no forecast (NaN) is no residual
    calibrator = calibration.for_series(None)
    thresholds: dict[str, float | None] = {}
    for sensitivity in REPORT_SENSITIVITIES:
        value = calibrator.threshold(sensitivity_to_alpha(sensitivity))
        thresholds[f"{sensitivity:g}"] = float(value) if np.isfinite(value) else None
    low, high = np.quantile(signed, [0.001, 0.999]) if signed.size else (-1.0, 1.0)
    reach = max(abs(float(low)), abs(float(high)), 1.0)
    counts, edges = np.histogram(np.clip(signed, -reach, reach), bins=HISTOGRAM_BINS, range=(-reach, reach))
    return ResidualHistogram(
        unit="residual / forecast spread (80% band half-width on the residual's side)",
        edges=_floats(edges),
        counts=[int(c) for c in counts],
        # sensitivity -> |residual| the training-time calibration would flag (None: its sample is too small to
        # resolve that false-alarm rate); recorded only, detection does not use it
        thresholds=thresholds,
        calibration_points=calibrator.n_calibration,
    )


def report_data(
    spec: ForecasterSpec,
    dataset: WindowDataset,
    data: PreparedData,
    test: Predictions,
    validation: Predictions,
    calibration: CalibrationSet,
    points: int = TEST_SAMPLE_POINTS,
) -> TrainingReport:
    return TrainingReport(
        test_sample=forecast_sample(spec, dataset, data, test, points),
        residuals=residual_histogram(spec, validation, calibration),
    )
