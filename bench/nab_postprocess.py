"""Streaming post-processing of raw anomaly scores (pure numpy), one small class per rule, for bench/nab.py.

The product never runs these rules (its detector flags calibrated conformal scores, `app.anomaly`); they live
beside the NAB benchmark, the one place that uses them.

Measured on NAB-style data (``shared/notes/anomaly-findings.md``), what happens after the forecaster decides most
of a detector's quality. Four generally useful rules, each applied row by row using only the current row and
earlier ones:

* `AnomalyLikelihood`: a raw score (e.g. a residual magnitude) becomes its rank among recent raw scores; the
  mean of the last few ranks is compared with its own long-run distribution (Gaussian tail, in the spirit of
  Numenta's "anomaly likelihood"). Output: ``min(1, -log10(p) / decades)``: a score of 0.5 with
  ``decades=10`` means p = 1e-5 whatever the series' scale, so one threshold is meaningful across series.
* `RunSuppressor`: only the first row of a run of very unlikely rows keeps its score; later rows of the run
  (and rows within `cooldown` rows of the last alarm) are damped, unless a row is clearly more severe than
  everything in the run so far (`escalation`). An operator, and NAB's scoring, gain from the earliest alarm of an
  incident and pay for every repeated one.
* `RangeBreak`: a value outside the range of every earlier value, widened by `margin` times that range,
  scores 1 (0 otherwise). It needs no model and catches level shifts the forecaster absorbs.
* `PersistenceGate`: a score of at least `level` keeps its value only once at least `min_count` of the last
  `window` scores reached `level`; a brief excursion is damped. On NAB, marginal excursions of a short-mean
  likelihood lasting one to three rows were mostly false positives, while incidents keep it high for longer.

Every class has `to_state()` / `from_state()` (JSON-serialisable) like the other `app.anomaly` classes; public
methods validate their inputs, the private ``_..._core`` methods trust them.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any, Self

import numpy as np

from app.anomaly._validation import (
    FloatArray,
    check_kind,
    float_array,
    in_open_interval,
    positive_int,
    real_number,
    require_finite,
    state_field,
)


class AnomalyLikelihood:
    """How unusual the recent raw scores are, as a log-scaled Gaussian tail probability (streaming).

    Per row: the raw score's rank among the `history` most recent raw scores (including itself) is a value in
    (0, 1] whatever the raw score's scale; the mean of the last `smoothing` ranks is compared with the mean and
    standard deviation of the previous `stats_history` such means; the score is
    ``min(1, -log10(Q(z)) / decades)`` with Q the standard normal tail. A single extreme row and a run of
    moderately unusual rows (a pattern change the forecaster only partly misses) both raise the mean rank.

    NaN raw scores (no forecast) score 0 and change no state; rows score 0 until `min_history` raw scores and
    `min_history` earlier means exist.
    """

    def __init__(
        self,
        history: int = 1000,
        smoothing: int = 10,
        stats_history: int = 2000,
        decades: float = 10.0,
        min_history: int = 50,
    ) -> None:
        self.history = positive_int("history", history, minimum=2)
        self.smoothing = positive_int("smoothing", smoothing)
        self.stats_history = positive_int("stats_history", stats_history, minimum=2)
        self.decades = _positive("decades", decades)
        self.min_history = positive_int("min_history", min_history, minimum=2)
        self._raw: deque[float] = deque(maxlen=self.history)
        self._ranks: deque[float] = deque(maxlen=self.smoothing)
        self._means: deque[float] = deque(maxlen=self.stats_history)

    def warm_up(self, raw_scores: Any) -> None:
        """Feed raw scores that are not scored (e.g. the rows a model was fitted on)."""
        self._score_core(_finite_or_nan("raw_scores", raw_scores))

    def score(self, raw_scores: Any) -> FloatArray:
        """Score each raw score (NaN = none) using it and the rows before it, then remember it: [N] -> [N]."""
        return self._score_core(_finite_or_nan("raw_scores", raw_scores))

    def _score_core(self, raw: FloatArray) -> FloatArray:
        out = np.zeros(raw.size)
        for i, value in enumerate(raw):
            if np.isnan(value):
                continue
            self._raw.append(float(value))
            if len(self._raw) < self.min_history:
                continue
            past = np.fromiter(self._raw, dtype=np.float64)
            below, equal = np.count_nonzero(past < value), np.count_nonzero(past == value)
            self._ranks.append((below + (equal + 1) / 2.0) / past.size)
            mean_rank = sum(self._ranks) / len(self._ranks)
            if len(self._means) >= self.min_history:
                means = np.fromiter(self._means, dtype=np.float64)
                spread = max(float(means.std(ddof=1)), 1e-4)
                z = (mean_rank - float(means.mean())) / spread
                tail = max(0.5 * math.erfc(z / math.sqrt(2.0)), 1e-300)
                out[i] = min(1.0, max(0.0, -math.log10(tail) / self.decades))
            self._means.append(mean_rank)
        return out

    def to_state(self) -> dict[str, Any]:
        return {
            "kind": "AnomalyLikelihood",
            "history": self.history,
            "smoothing": self.smoothing,
            "stats_history": self.stats_history,
            "decades": self.decades,
            "min_history": self.min_history,
            "raw": list(self._raw),
            "ranks": list(self._ranks),
            "means": list(self._means),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Self:
        check_kind(state, "AnomalyLikelihood", cls.__name__)
        likelihood = cls(
            **{
                key: state_field(state, key, cls.__name__)
                for key in ("history", "smoothing", "stats_history", "decades", "min_history")
            }
        )
        for key, target in (
            ("raw", likelihood._raw),
            ("ranks", likelihood._ranks),
            ("means", likelihood._means),
        ):
            values = _finite(f"state[{key!r}]", state_field(state, key, cls.__name__))
            target.extend(float(x) for x in values)
        return likelihood


class RunSuppressor:
    """Keep only the first row of a run of scores >= `level`; damp the rest.

    A row with score >= `level` is an alarm. If the previous alarm lies at most `cooldown` rows back, the row's
    score is multiplied by `damping` (it belongs to the same run); otherwise it keeps its score. Every alarm,
    kept or damped, extends the run. Rows below `level` are passed through unchanged.

    Escalation: an alarm inside a run whose score is at least the run's peak score plus `escalation` keeps its
    score (and becomes the new peak). Without it, a series with a moderately unlikely event more often than
    every `cooldown` rows (e.g. a regular spike) is one endless run, and even a certain anomaly (score 1) that
    follows is silenced. Scores such as `AnomalyLikelihood`'s are log-scaled probabilities, so an additive step
    is a fixed factor in probability (0.5 with ``decades=10``: 1e5 times less likely than the run's peak).
    ``escalation=None`` (the default) never escalates.
    """

    def __init__(
        self, level: float = 0.5, cooldown: int = 20, damping: float = 0.5, escalation: float | None = None
    ) -> None:
        self.level = in_open_interval("level", level, 0.0, 1.0, "Use the score of a 'very unlikely' row.")
        self.cooldown = positive_int("cooldown", cooldown)
        self.damping = _damping(damping)
        self.escalation = None if escalation is None else real_number("escalation", escalation)
        if self.escalation is not None and self.escalation <= 0.0:
            raise ValueError(
                f"escalation must be > 0; got {self.escalation!r}. Use e.g. 0.5, or None for none."
            )
        self._since_alarm: int | None = None
        self._peak = 0.0  # highest alarm score of the current run

    def apply(self, scores: Any) -> FloatArray:
        """Suppressed scores, continuing the run state of earlier calls: [N] in [0, 1] -> [N]."""
        return self._apply_core(_unit_scores(scores))

    def _apply_core(self, values: FloatArray) -> FloatArray:
        out = values.copy()
        since, peak = self._since_alarm, self._peak
        step = math.inf if self.escalation is None else self.escalation
        for i, value in enumerate(values):
            if since is not None:
                since += 1
            if value >= self.level:
                if since is not None and since <= self.cooldown:
                    if value < peak + step:
                        out[i] = value * self.damping
                    peak = max(peak, value)
                else:
                    peak = value
                since = 0
        self._since_alarm, self._peak = since, peak
        return out

    def to_state(self) -> dict[str, Any]:
        return {
            "kind": "RunSuppressor",
            "level": self.level,
            "cooldown": self.cooldown,
            "damping": self.damping,
            "escalation": self.escalation,
            "since_alarm": self._since_alarm,
            "peak": float(self._peak),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Self:
        check_kind(state, "RunSuppressor", cls.__name__)
        suppressor = cls(
            level=state_field(state, "level", cls.__name__),
            cooldown=state_field(state, "cooldown", cls.__name__),
            damping=state_field(state, "damping", cls.__name__),
            escalation=state.get("escalation"),
        )
        since = state_field(state, "since_alarm", cls.__name__)
        suppressor._since_alarm = None if since is None else positive_int("state['since_alarm']", since, 0)
        suppressor._peak = real_number("state['peak']", state.get("peak", 0.0))
        return suppressor


class PersistenceGate:
    """Damp scores >= `level` until at least `min_count` of the last `window` scores reached `level`.

    Per row (streaming): count the rows among the `window` most recent ones (including this one) whose score
    is >= `level`. A row scoring >= `level` keeps its score if that count is >= `min_count`, else its score is
    multiplied by `damping`. Rows below `level` pass unchanged. An alarm is thus delayed by up to
    `min_count - 1` rows and a brief excursion of a smoothed score (a likelihood crossing `level` for a row or
    two) does not count as an alarm.
    """

    def __init__(
        self, level: float = 0.3, window: int = 10, min_count: int = 4, damping: float = 0.5
    ) -> None:
        self.level = in_open_interval("level", level, 0.0, 1.0, "Use the run level of the RunSuppressor.")
        self.window = positive_int("window", window)
        self.min_count = positive_int("min_count", min_count)
        if self.min_count > self.window:
            raise ValueError(f"min_count ({self.min_count}) must be <= window ({self.window}).")
        self.damping = _damping(damping)
        self._hits: deque[bool] = deque(maxlen=self.window)

    def apply(self, scores: Any) -> FloatArray:
        """Gated scores, continuing the state of earlier calls: [N] in [0, 1] -> [N]."""
        return self._apply_core(_unit_scores(scores))

    def _apply_core(self, values: FloatArray) -> FloatArray:
        out = values.copy()
        hits = self._hits
        count = sum(hits)
        for i, value in enumerate(values):
            hit = bool(value >= self.level)
            if len(hits) == hits.maxlen and hits[0]:
                count -= 1
            hits.append(hit)
            count += hit
            if hit and count < self.min_count:
                out[i] = value * self.damping
        return out

    def to_state(self) -> dict[str, Any]:
        return {
            "kind": "PersistenceGate",
            "level": self.level,
            "window": self.window,
            "min_count": self.min_count,
            "damping": self.damping,
            "hits": list(self._hits),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Self:
        check_kind(state, "PersistenceGate", cls.__name__)
        keys = ("level", "window", "min_count", "damping")
        gate = cls(**{key: state_field(state, key, cls.__name__) for key in keys})
        hits = state_field(state, "hits", cls.__name__)
        if not isinstance(hits, list) or not all(isinstance(x, bool) for x in hits):
            raise ValueError("state['hits'] must be a list of booleans.")
        gate._hits.extend(hits)
        return gate


class RangeBreak:
    """1 for a value outside [lo - margin * (hi - lo), hi + margin * (hi - lo)] of all earlier values, else 0.

    The first value ever seen (nothing earlier) scores 0. Every value, breaking or not, widens the range.
    """

    def __init__(self, margin: float = 0.05) -> None:
        self.margin = real_number("margin", margin)
        if self.margin < 0:
            raise ValueError(f"margin must be >= 0; got {self.margin!r}. Use e.g. 0.05 for 5 % of the range.")
        self._low: float | None = None
        self._high: float | None = None

    def warm_up(self, values: Any) -> None:
        """Widen the range by values that are not scored (e.g. a probationary period)."""
        vals = _finite("values", values)
        if vals.size:
            self._extend_core(float(vals.min()), float(vals.max()))

    def score(self, values: Any) -> FloatArray:
        """Range-break indicator per value, each against the values before it: [N] -> [N] of 0/1."""
        return self._score_core(_finite("values", values))

    def _score_core(self, values: FloatArray) -> FloatArray:
        if values.size == 0:
            return np.zeros(0)
        start = 0
        if self._low is None:
            self._extend_core(float(values[0]), float(values[0]))
            start = 1
        assert self._low is not None and self._high is not None
        seen = values[start:]
        low = np.minimum.accumulate(np.concatenate(([self._low], seen)))[:-1]  # range before each row
        high = np.maximum.accumulate(np.concatenate(([self._high], seen)))[:-1]
        slack = self.margin * (high - low)
        broken = (seen < low - slack) | (seen > high + slack)
        if seen.size:
            self._extend_core(float(seen.min()), float(seen.max()))
        return np.concatenate((np.zeros(start), broken.astype(np.float64)))

    def _extend_core(self, low: float, high: float) -> None:
        self._low = low if self._low is None else min(self._low, low)
        self._high = high if self._high is None else max(self._high, high)

    def to_state(self) -> dict[str, Any]:
        return {"kind": "RangeBreak", "margin": self.margin, "low": self._low, "high": self._high}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Self:
        check_kind(state, "RangeBreak", cls.__name__)
        breaker = cls(margin=state_field(state, "margin", cls.__name__))
        low, high = state_field(state, "low", cls.__name__), state_field(state, "high", cls.__name__)
        if (low is None) != (high is None):
            raise ValueError("state['low'] and state['high'] must both be numbers or both None.")
        if low is not None:
            breaker._extend_core(real_number("state['low']", low), real_number("state['high']", high))
        return breaker


def _damping(value: Any) -> float:
    damping = real_number("damping", value)
    if not 0.0 <= damping < 1.0:
        raise ValueError(f"damping must be in [0, 1); got {damping!r}. Use e.g. 0.5.")
    return damping


def _unit_scores(scores: Any) -> FloatArray:
    values = float_array("scores", scores, ndim=1)
    require_finite("scores", values, "Replace missing scores by 0.")
    if np.any((values < 0) | (values > 1)):
        raise ValueError("scores must lie in [0, 1]; clip or calibrate them first.")
    return values


def _positive(name: str, value: Any) -> float:
    result = real_number(name, value)
    if result <= 0:
        raise ValueError(f"{name} must be > 0; got {result!r}. Pass a positive number.")
    return result


def _finite(name: str, value: Any) -> FloatArray:
    arr = float_array(name, value, ndim=1)
    require_finite(name, arr, "Drop missing observations first (or interpolate them).")
    return arr


def _finite_or_nan(name: str, value: Any) -> FloatArray:
    arr = float_array(name, value, ndim=1)
    require_finite(name, arr, "Pass NaN for 'no score'; infinities are not allowed.", ignore=np.isnan(arr))
    return arr
