"""The one anomaly detector: streaming-first, self-learning, its whole state a versioned JSON dict.

`Detector.update(timestamp, value)` scores one reading using only it and earlier ones and returns its
`ScoredPoint`; batch detection (`detect_series`) is the same detector folded over a series, so a stream and a
batch give bitwise the same scores for the same readings, and so does a stream restored from its state.

Per reading (after the learning period), O(1) work:
1. Timing (`app.anomaly.sampling`): regular, gap, reanchored; duplicate, late and missing readings are answered
   unscored and not fed.
2. Expected value: the last value plus the forecast difference of the self-learned `DifferenceAR`, or a
   registered model's lead-1 forecast when the caller passes one (`expected=`). Seasonal inputs are looked up
   by time: the reading nearest the instant one period earlier (jittered stamps), or, when that instant fell in
   a gap (a dropped row), the reading after it, whose difference spans the gap. The band is the expected value
   plus or minus the 95th percentile of recent scaled errors, widened for gaps.
3. Raw scores, each ranked among its own recent values (scale-free): the error's magnitude, the signed error
   (upwards and downwards separately) and the distance from the median of the recent values.
4. `RankLikelihood` turns each rank stream into a log-scaled tail probability; a short mean (10) catches spikes
   and brief pattern changes and is gated by `PersistenceGate`; a long mean (50) of the magnitude ranks catches
   sustained regimes (bursts of volatility, a day that does not follow the usual shape).
5. `RangeBreak` on the values, and on the mean difference of the last 12 readings from the readings one day
   earlier (looked up by time, so dropped rows and jitter do not shift it: a flat stretch where a daily cycle
   should be, a missing jump), scores 1.
6. `RunSuppressor` keeps the first alarm of a run. The result is the `score` in [0, 1], on a log scale of the
   likelihoods' tail probability (0.3 = 1e-3): comparable across series, and what NAB is scored on.
7. The flag: `ScoreCalibrator` measures how often this series' own scores reach the new one (with a fitted tail
   beyond the data) and the reading is flagged when that frequency is at most the sensitivity's false-alarm rate
   `alpha` (`app.anomaly.sensitivity`). The sensitivity never changes a score, only the flag.

A level shift: the forecaster predicts differences, so the expected line follows a new level from the second
reading after it (the difference inputs are clipped, so the jump itself does not echo); `test_detector.py`
checks it is within noise from the third reading on.

Learning: the first `learning_points` readings are stored and answered with `score: None`; at the last one the
forecaster is fitted and every learning reading is replayed through steps 1-6 (answers discarded) so that the
rank windows and likelihoods start warm. From then on the forecaster is refitted every `refit_every` readings on
the last `memory` values, at that reading and inside `update`: a refit is a closed-form solve of a few
milliseconds, so the new weights take effect at a point fixed by the schedule and a replay, a restart or the
batch path give the same scores.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Literal, Self

from app.anomaly._validation import positive_int, state_field
from app.anomaly.gates import PersistenceGate, RangeBreak, RunSuppressor
from app.anomaly.learned import LAGS, DifferenceAR
from app.anomaly.likelihood import MIN_MEANS, RankLikelihood
from app.anomaly.points import Sampling, ScoredPoint
from app.anomaly.ring import RankedRing, Ring, pack, unpack
from app.anomaly.sampling import classify, seasonal_periods, typical_interval
from app.anomaly.score_calibration import ScoreCalibrator
from app.anomaly.sensitivity import DEFAULT_SENSITIVITY, sensitivity_to_alpha, validate_sensitivity

STATE_KIND = "Detector"
STATE_VERSION = 1
DEFAULT_LEARNING_POINTS = 100
MIN_LEARNING_POINTS = 20
MAX_LEARNING_POINTS = 10_000
SHORT, LONG = 10, 50  # readings in the short and the long mean of ranks
SEASON_LEAD = 12  # readings averaged in the seasonal difference
SEASON_WARM = 100  # seasonal differences seen before their range can break
ALARM = 0.3  # score of a "very unlikely" reading (p = 1e-3) for the gate and the run suppressor
GATE = (10, 3, 0.5)  # PersistenceGate: window, alarms needed in it, damping of an alarm without them
RANGE_MARGIN, SEASON_MARGIN = 0.02, 0.3  # widening of the value range and of the seasonal-difference range
FAR_BREAK = 0.25  # a value this many range widths past every earlier one is flagged at any sensitivity
RUN = (100, 0.0, 0.5)  # RunSuppressor: cooldown, damping, escalation
BAND_QUANTILE = 0.95

DetectorState = Literal["learning", "scoring"]


@dataclass(frozen=True)
class DetectorConfig:
    """What a user may set per stream (`learning_points`); `memory` and `refit_every` are fixed defaults."""

    learning_points: int = DEFAULT_LEARNING_POINTS
    memory: int = 1000  # readings in every recent window (ranks, median, refits)
    refit_every: int = 500  # readings between refits (at least `learning_points`)

    def __post_init__(self) -> None:
        positive_int("learning_points", self.learning_points, minimum=MIN_LEARNING_POINTS)
        if self.learning_points > MAX_LEARNING_POINTS:
            raise ValueError(
                f"learning_points must be at most {MAX_LEARNING_POINTS}; got {self.learning_points}. "
                "Use a shorter learning period."
            )
        positive_int("memory", self.memory, minimum=2 * SHORT)
        positive_int("refit_every", self.refit_every)

    @property
    def refit_interval(self) -> int:
        return max(self.refit_every, self.learning_points)


class Detector:
    """One series' detector (see module docstring). Not thread-safe: one caller at a time."""

    def __init__(
        self, config: DetectorConfig | None = None, sensitivity: float = DEFAULT_SENSITIVITY
    ) -> None:
        self.config = config or DetectorConfig()
        self.sensitivity = validate_sensitivity(sensitivity)
        self.count = 0  # readings received (every kind), the next reading's index
        self.fed = 0  # readings fed to the detector
        self.last_time: float | None = None  # epoch seconds of the last fed reading
        self.last_value = 0.0
        self.learning: list[tuple[float, float, float]] = []  # (time, value, given expected) until ready
        self.refits = 0
        self.since_refit = 0
        self.last_refit_at: float | None = None  # time of the reading at which the weights were fitted
        self.model: DifferenceAR | None = None  # None while learning
        self.periods: tuple[float, ...] = ()  # seasonal periods in seconds (a day, a week)
        self._reset_scoring()

    # ------------------------------------------------------------------ public
    @property
    def state_name(self) -> DetectorState:
        return "learning" if self.model is None else "scoring"

    @property
    def points_until_ready(self) -> int:
        return 0 if self.model is not None else self.config.learning_points - len(self.learning)

    @property
    def alpha(self) -> float:
        """The false-alarm rate of this detector's sensitivity: a reading is flagged when its calibrated tail
        probability (`ScoreCalibrator`) is at most this."""
        return sensitivity_to_alpha(self.sensitivity)

    def set_sensitivity(self, sensitivity: float) -> None:
        self.sensitivity = validate_sensitivity(sensitivity)

    def update(
        self, timestamp: datetime | None, value: float | None, expected: float | None = None
    ) -> ScoredPoint:
        """Score one reading (naive-UTC `timestamp`, None for a series without stamps; `value` None = missing).

        `expected`: a registered model's lead-1 forecast of this reading, used instead of the self-learned one.
        """
        index = self.count
        self.count += 1
        if value is None or not math.isfinite(value):
            return _unscored(index, timestamp, None, "missing")
        time = _epoch(timestamp, index)
        if self.last_time is not None and time <= self.last_time:
            return _unscored(index, timestamp, value, "duplicate" if time == self.last_time else "late")
        given = math.nan if expected is None else float(expected)
        self.fed += 1
        if self.model is None:
            return self._learn(index, timestamp, time, float(value), given)
        return self._score(index, timestamp, time, float(value), given)

    # ------------------------------------------------------------------ learning
    def _learn(
        self, index: int, timestamp: datetime | None, time: float, value: float, given: float
    ) -> ScoredPoint:
        self.learning.append((time, value, given))
        self.last_time, self.last_value = time, value
        if len(self.learning) >= self.config.learning_points:
            self._start()
        return _unscored(index, timestamp, value, "regular")

    def _start(self) -> None:
        """Fit on the learning readings, then replay them to warm every window (answers discarded)."""
        readings, self.learning = self.learning, []
        self.typical = typical_interval(b[0] - a[0] for a, b in itertools.pairwise(readings))
        self.periods = seasonal_periods(self.typical)
        times, values = [time for time, _, _ in readings], [value for _, value, _ in readings]
        self.model = DifferenceAR.fit(values, times, self.periods, self.typical / 2.0)
        self.last_refit_at = readings[-1][0]
        self.last_time = None
        for value in values:  # the learning readings set the range: replaying them must not break it
            self.range.extend(value)
        for time, value, given in readings:
            self._score(-1, None, time, value, given)
        self.since_refit = 0
        self.gate = PersistenceGate(ALARM, *GATE)  # alarms of the replay do not gate or suppress later ones
        self.suppressor = RunSuppressor(ALARM, *RUN)

    # ------------------------------------------------------------------ scoring
    def _reset_scoring(self) -> None:
        memory = self.config.memory
        self.model = None
        self.typical = 0.0
        self.periods = ()
        self.fresh = 0  # readings since the history was last reanchored (difference inputs older are void)
        self.times = Ring(memory)  # recent fed readings' times, values and scaled differences, aligned
        self.values = Ring(memory)
        self.diffs = Ring(
            memory
        )  # differences in the series' units; 0 for the first and a reanchored reading
        self.level = RankedRing(memory)  # recent values, sorted (the median)
        self.magnitudes = RankedRing(memory)
        self.signed = RankedRing(memory)
        self.deviations = RankedRing(memory)
        self.seasonal = Ring(SEASON_LEAD)
        self.likelihoods = [RankLikelihood(SHORT, 2 * memory) for _ in range(4)]  # mag, up, down, level
        self.sustained = RankLikelihood(LONG, 2 * memory)
        self.gate = PersistenceGate(ALARM, *GATE)
        self.range: RangeBreak = RangeBreak(RANGE_MARGIN)
        self.season_range = RangeBreak(SEASON_MARGIN)
        self.suppressor = RunSuppressor(ALARM, *RUN)
        self.calibrator = ScoreCalibrator()
        self.tail_probability = 1.0  # calibrated tail probability of the last scored reading

    def _score(
        self, index: int, timestamp: datetime | None, time: float, value: float, given: float
    ) -> ScoredPoint:
        assert self.model is not None
        interval = 0.0 if self.last_time is None else time - self.last_time
        sampling, widen = classify(interval, self.typical) if self.last_time is not None else ("regular", 1.0)
        first = self.last_time is None
        if sampling == "reanchored":
            self.fresh = 0
        expected = self.last_value + (0.0 if first else self._forecast(time))
        if not math.isnan(given):
            expected = given
        spread = self.model.scale * widen
        error = (value - expected) / spread  # in scales of the differences
        score = 0.0 if first else self._likelihood(time, value, error)
        half_width = spread * (
            self.magnitudes.quantile(BAND_QUANTILE) if len(self.magnitudes) >= SHORT else 2.0
        )
        self._advance(time, value, first)
        flagged = not first and self.tail_probability <= self.alpha
        direction = ("up" if value > expected else "down") if flagged else None
        return ScoredPoint(
            index, timestamp, value, expected, expected - half_width, expected + half_width, score, flagged,
            direction, sampling,
        )  # fmt: skip

    def _forecast(self, time: float) -> float:
        """The self-learned forecast of the difference to the reading at `time`."""
        assert self.model is not None
        clip = self.model.clip
        lags = [clip(self.diffs.back(lag)) if lag < self.fresh else 0.0 for lag in range(LAGS)]
        return self.model.predict(lags, [self._diff_before(time, period) for period in self.model.periods])

    def _index_before(self, time: float, period: float) -> int:
        """Index in the history of the reading nearest to `time - period`, if within half a typical interval of
        it; -1 when there is none (the history does not reach back so far, or that instant fell in a gap)."""
        target, slack, times = time - period, self.typical / 2.0, self.times.values
        index = bisect.bisect_right(times, target + slack) - 1
        if index < 0:
            return -1
        found = times[index]
        if found > target and index > 0 and target - times[index - 1] < found - target:  # jitter: the earlier
            index, found = index - 1, times[index - 1]  # is nearer
        return index if found >= target - slack else -1

    def _diff_before(self, time: float, period: float) -> float:
        """The scaled difference one `period` before `time` (`app.anomaly.learned.spanning_index`): of the
        reading nearest that instant, else of the first reading after it (its difference spans the gap)."""
        assert self.model is not None
        index = self._index_before(time, period)
        if index < 0:
            times = self.times.values
            if not times or time - period < times[0]:  # the history does not reach back so far
                return 0.0
            index = bisect.bisect_right(times, time - period)
            if not 1 <= index < len(times):
                return 0.0
        return self.model.clip(self.diffs.values[index])

    def _likelihood(self, time: float, value: float, error: float) -> float:
        """Steps 3-6 of the module docstring for one reading's scaled error."""
        magnitude = abs(error)
        self.magnitudes.push(magnitude)
        rank = self.magnitudes.rank(magnitude)
        self.signed.push(error)
        up = self.signed.rank(error)
        down = self.signed.rank_below(error)
        median = self.level.quantile(0.5) if len(self.level) else value
        deviation = abs(value - median)
        self.deviations.push(deviation)
        ranks = (rank, up, down, self.deviations.rank(deviation))
        short = max(lik.update(r) for lik, r in zip(self.likelihoods, ranks, strict=True))
        combined = max(self.gate.apply(short), self.sustained.update(rank), self.range.score(value))
        combined = max(combined, self._seasonal_break(time, value))
        score = self.suppressor.apply(combined, self.range.excess)
        self.tail_probability = 1.0
        if self.sustained.count > MIN_MEANS:  # the likelihoods answer 0 until they are warm: not a score
            self.tail_probability = self.calibrator.tail(score)
            self.calibrator.add(score)
        if self.range.excess >= FAR_BREAK:  # far outside every earlier value: flagged at any sensitivity
            self.tail_probability = 0.0
        return score

    def _seasonal_break(self, time: float, value: float) -> float:
        index = self._index_before(time, self.periods[0]) if self.periods else -1
        if index < 0:
            return 0.0
        self.seasonal.push(value - self.values.values[index])
        if len(self.seasonal) < SEASON_LEAD:
            return 0.0
        mean = abs(math.fsum(self.seasonal) / SEASON_LEAD)
        if self.season_range.count < SEASON_WARM:
            self.season_range.extend(mean)
            return 0.0
        return self.season_range.score(mean)

    def _advance(self, time: float, value: float, first: bool) -> None:
        assert self.model is not None
        self.diffs.push(0.0 if first or self.fresh == 0 else value - self.last_value)
        self.fresh += 1
        self.times.push(time)
        self.values.push(value)
        self.level.push(value)
        self.last_time, self.last_value = time, value
        self.since_refit += 1
        if self.since_refit >= self.config.refit_interval:
            self._refit(time)

    def _refit(self, time: float) -> None:
        """New weights, typical interval and seasons from the last `memory` readings."""
        times = list(self.times)
        self.typical = typical_interval(b - a for a, b in itertools.pairwise(times)) or self.typical
        self.periods = seasonal_periods(self.typical)
        self.model = DifferenceAR.fit(list(self.values), times, self.periods, self.typical / 2.0)
        self.refits += 1
        self.since_refit = 0
        self.last_refit_at = time

    # ------------------------------------------------------------------ state
    def to_state(self) -> dict[str, Any]:
        """The whole detector as JSON-ready data (exact: a restored detector scores on bit for bit)."""
        state: dict[str, Any] = {
            "kind": STATE_KIND,
            "version": STATE_VERSION,
            "config": asdict(self.config),
            "sensitivity": self.sensitivity,
            "count": self.count,
            "fed": self.fed,
            "last_time": self.last_time,
            "last_value": self.last_value,
            "learning": [pack(column) for column in zip(*self.learning, strict=True)]
            if self.learning
            else None,
            "refits": self.refits,
            "since_refit": self.since_refit,
            "last_refit_at": self.last_refit_at,
            "model": None if self.model is None else self.model.to_state(),
        }
        if self.model is not None:
            state["scoring"] = self._scoring_state()
        return state

    def _scoring_state(self) -> dict[str, Any]:
        rings = {name: getattr(self, name).to_text() for name in _RINGS}
        return {
            "typical": self.typical,
            "periods": list(self.periods),
            "fresh": self.fresh,
            **rings,
            "likelihoods": [likelihood.to_state() for likelihood in self.likelihoods],
            "sustained": self.sustained.to_state(),
            "gate": self.gate.to_state(),
            "range": self.range.to_state(),
            "season_range": self.season_range.to_state(),
            "suppressor": self.suppressor.to_state(),
            "calibrator": self.calibrator.to_state(),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Self:
        """A detector from `to_state()` output (after a JSON round trip); older versions are upgraded."""
        state = upgrade_state(state)
        config = DetectorConfig(**_field(state, "config"))
        detector = cls(config, _field(state, "sensitivity"))
        for key in ("count", "fed", "refits", "since_refit"):
            setattr(detector, key, int(_field(state, key)))
        detector.last_time = _optional_float(_field(state, "last_time"))
        detector.last_value = float(_field(state, "last_value"))
        detector.last_refit_at = _optional_float(_field(state, "last_refit_at"))
        learning = _field(state, "learning")
        if learning is not None:
            columns = [unpack(text, "learning") for text in learning]
            detector.learning = list(zip(*columns, strict=True))
        model = _field(state, "model")
        if model is not None:
            detector.model = DifferenceAR.from_state(model)
            detector._restore_scoring(_field(state, "scoring"))
        return detector

    def _restore_scoring(self, state: dict[str, Any]) -> None:
        self.typical = float(_field(state, "typical"))
        self.periods = tuple(float(period) for period in _field(state, "periods"))
        self.fresh = int(_field(state, "fresh"))
        memory = self.config.memory
        for name in _RINGS:
            capacity = SEASON_LEAD if name == "seasonal" else memory
            ring_type = RankedRing if name in _RANKED else Ring
            setattr(self, name, ring_type(capacity, unpack(_field(state, name), name)))
        self.level = RankedRing(memory, self.values)  # the same readings as `values`: not stored twice
        self.likelihoods = [RankLikelihood.from_state(item) for item in _field(state, "likelihoods")]
        self.sustained = RankLikelihood.from_state(_field(state, "sustained"))
        self.gate.restore(_field(state, "gate"))
        self.range = RangeBreak.from_state(_field(state, "range"))
        self.season_range = RangeBreak.from_state(_field(state, "season_range"))
        self.suppressor.restore(_field(state, "suppressor"))
        self.calibrator = ScoreCalibrator.from_state(_field(state, "calibrator"))


_RINGS = ("times", "values", "diffs", "magnitudes", "signed", "deviations", "seasonal")
_RANKED = ("magnitudes", "signed", "deviations")


def upgrade_state(state: Any) -> dict[str, Any]:
    """`state` in the current version (version 1 is the first; later versions add their steps here)."""
    kind = state_field(state, "kind", "Detector")
    if kind != STATE_KIND:
        raise ValueError(f"state['kind'] is {kind!r}; Detector.from_state expects {STATE_KIND!r}")
    version = state_field(state, "version", "Detector")
    if version != STATE_VERSION:
        raise ValueError(
            f"detector state version {version!r} is not known (this code writes {STATE_VERSION})"
        )
    return dict(state)


def detect_series(
    timestamps: Sequence[datetime] | None,
    values: Sequence[float | None],
    config: DetectorConfig | None = None,
    sensitivity: float = DEFAULT_SENSITIVITY,
    expected: Sequence[float | None] | None = None,
) -> list[ScoredPoint]:
    """Batch detection: a fresh `Detector` folded over one series (the same scores a stream gives)."""
    detector = Detector(config, sensitivity)
    stamps = timestamps if timestamps is not None else [None] * len(values)
    given = expected if expected is not None else [None] * len(values)
    return [detector.update(t, v, e) for t, v, e in zip(stamps, values, given, strict=True)]


def _field(state: dict[str, Any], key: str) -> Any:
    return state_field(state, key, "Detector")


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


_EPOCH = datetime(1970, 1, 1)


def _epoch(timestamp: datetime | None, index: int) -> float:
    """Seconds since 1970 of a naive-UTC stamp; a series without stamps counts one second per reading."""
    return float(index) if timestamp is None else (timestamp - _EPOCH).total_seconds()


def _unscored(index: int, timestamp: datetime | None, value: float | None, sampling: Sampling) -> ScoredPoint:
    return ScoredPoint(index, timestamp, value, None, None, None, None, False, None, sampling)
