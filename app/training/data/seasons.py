"""Season detection: the dominant seasonal period of a prepared series, in steps."""

from __future__ import annotations

import numpy as np
import pandas as pd

from app.training.data.frequency import NS_PER_DAY

_SEASON_THRESHOLD = 0.3
_SEASON_PROMINENCE = 0.1
_SEASON_Z = 1.96


def detect_season(values: np.ndarray, frequency: str, max_lag: int | None = None) -> int:
    """Dominant seasonal period in steps, or 1 when there is none.

    Uses the autocorrelation of the linearly detrended series (not differenced: differencing buries smooth
    seasonal patterns under noise). A lag counts only if it is a local ACF peak, its ACF exceeds 0.3, it rises
    at least 0.1 above the lowest ACF at shorter lags (rejects the slowly decaying ACF of random walks such as
    prices), and it is significant by Bartlett's formula (rejects chance bumps at long lags). Periods natural
    for the frequency (24 and 168 for hourly data, ...) are tried first; otherwise the strongest peak in
    [2, max_lag] wins. At least two full periods are required, so max_lag defaults to len(values) // 2.
    """
    x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x)]
    limit = len(x) // 2 if max_lag is None else min(int(max_lag), len(x) // 2)
    if limit < 2:
        return 1
    acf = _autocorrelation(x, limit + 1)
    if acf is None:
        return 1
    qualifies = _season_qualifies(acf, len(x))
    natural = [
        p for p in natural_periods(frequency) if 2 <= p <= limit and qualifies[p] and _near_peak(acf, p)
    ]
    if natural:
        return int(max(natural, key=lambda p: acf[p]))
    inner = acf[1:-1]
    peaks = np.flatnonzero(qualifies[1:-1] & (inner >= acf[:-2]) & (inner >= acf[2:])) + 1
    peaks = peaks[peaks >= 2]
    return int(peaks[np.argmax(acf[peaks])]) if len(peaks) else 1


def natural_periods(frequency: str) -> list[int]:
    """Season lengths worth checking first at a frequency: a day, a week, a year, ... in steps."""
    offset = pd.tseries.frequencies.to_offset(frequency)
    code = offset.rule_code.upper()
    if code == "B":
        return [5, 260] if offset.n == 1 else []
    if code.startswith("W"):
        return [52] if offset.n == 1 else []
    if code in {"MS", "ME", "M", "BMS", "BME"}:
        return [12 // offset.n] if 12 % offset.n == 0 and offset.n < 12 else []
    if code.startswith("Q"):
        return [4] if offset.n == 1 else []
    try:
        step = offset.nanos  # ValueError for calendar offsets (months, weeks, business days)
    except ValueError:
        return []
    if step <= 0:
        return []
    periods = []
    for unit_ns, minimum in ((60 * 10**9, 12), (3_600 * 10**9, 12), (NS_PER_DAY, 2), (7 * NS_PER_DAY, 2)):
        if unit_ns % step == 0 and unit_ns // step >= minimum:
            periods.append(unit_ns // step)
    if step % NS_PER_DAY == 0 and (365 * NS_PER_DAY) % step == 0:
        periods.append(365 * NS_PER_DAY // step)
    return periods


def _autocorrelation(x: np.ndarray, lags: int) -> np.ndarray | None:
    """Biased ACF (divides by n, so long lags are damped) via FFT; None for a flat series."""
    t = np.arange(len(x), dtype=np.float64)
    slope, intercept = np.polyfit(t, x, 1)
    resid = x - (slope * t + intercept)
    size = 1 << int(np.ceil(np.log2(2 * len(x))))
    spectrum = np.fft.rfft(resid, size)
    acov = np.fft.irfft(spectrum * np.conj(spectrum), size)[:lags]
    if acov[0] <= 1e-12 * max(1.0, float(np.mean(x**2))):
        return None
    acf: np.ndarray = acov / acov[0]
    return acf


def _season_qualifies(acf: np.ndarray, n: int) -> np.ndarray:
    """Per lag: ACF above the threshold, prominent over shorter lags, and significant (Bartlett)."""
    squares = np.cumsum(acf**2) - 1.0  # squares[k] = sum of acf[1..k]^2
    earlier_sq = np.concatenate(([0.0, 0.0], squares[1:-1]))  # sum over acf[1..lag-1]
    earlier_min = np.concatenate(([np.inf, np.inf], np.minimum.accumulate(acf[1:-1])))  # min of acf[1..lag-1]
    bartlett = _SEASON_Z * np.sqrt((1.0 + 2.0 * earlier_sq) / n)
    return (acf >= _SEASON_THRESHOLD) & (acf - earlier_min >= _SEASON_PROMINENCE) & (acf > bartlett)


def _near_peak(acf: np.ndarray, lag: int) -> bool:
    """A natural period may sit a step or so off the exact ACF maximum (e.g. 260 business days a year)."""
    width = max(1, lag // 20)
    return bool(acf[lag] >= acf[max(1, lag - width) : lag + width + 1].max() - 0.02)
