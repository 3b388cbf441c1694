"""Per-point rules between the raw likelihoods and the final score (streaming, O(1), JSON state).

* `RangeBreak`: 1 for a value outside the range of every earlier value, widened by `margin` times that range.
  It needs no model and catches level shifts a difference forecaster absorbs after one point.
* `PersistenceGate`: a short-mean likelihood alarm keeps its score only once `min_count` of the last `window`
  scores were alarms; a brief excursion is damped by `damping`. Incidents keep the likelihood high for longer.
* `RunSuppressor`: only the first point of a run of alarms keeps its score; later alarms within `cooldown`
  points of the previous one are damped, unless one is `escalation` above the run's peak (a range break inside
  a run of moderate alarms), or a range break `BREAK_ESCALATION` times farther out than the run's farthest one
  (a spike far beyond a value that only just set a record). An operator, and NAB's scoring, gain from the
  earliest alarm of an incident and pay for every repeated one.
"""

from __future__ import annotations

import math
from typing import Any, Self

from app.anomaly.ring import Ring, unpack

BREAK_ESCALATION = 3.0


class RangeBreak:
    """Range of all values seen so far; `score` says whether a value breaks it (then widens it)."""

    def __init__(
        self,
        margin: float,
        low: float | None = None,
        high: float | None = None,
        floor: float = 1.0,
        full: float = 1.0,
    ) -> None:
        self.margin, self.floor, self.full = margin, floor, full
        self.low = low
        self.high = high
        self.count = 0

    def score(self, value: float) -> float:
        """1.0 when `value` lies outside the range of every earlier value widened by `margin` of it, else 0.0;
        `excess` is then how far outside, in widths of that range (what `RunSuppressor` compares)."""
        excess = 0.0
        if self.low is not None and self.high is not None:
            width = self.high - self.low
            excess = max(self.low - value, value - self.high) - self.margin * width
            excess = excess / width if width > 0 else (math.inf if excess > 0 else 0.0)
        self.extend(value)
        self.excess = max(0.0, excess)
        return 1.0 if excess > 0.0 else 0.0

    def extend(self, value: float) -> None:
        self.low = value if self.low is None else min(self.low, value)
        self.high = value if self.high is None else max(self.high, value)
        self.count += 1

    def to_state(self) -> list[Any]:
        return [self.margin, self.low, self.high, self.count]

    @classmethod
    def from_state(cls, state: list[Any]) -> Self:
        margin, low, high, count = state
        breaker = cls(float(margin), low, high)
        breaker.count = int(count)
        return breaker


class PersistenceGate:
    """Damp an alarm (score >= level) until `min_count` of the last `window` scores were alarms."""

    def __init__(self, level: float, window: int, min_count: int, damping: float) -> None:
        self.level, self.min_count, self.damping = level, min_count, damping
        self.hits = Ring(window)

    def apply(self, score: float) -> float:
        hit = score >= self.level
        self.hits.push(1.0 if hit else 0.0)
        if hit and sum(self.hits) < self.min_count:
            return score * self.damping
        return score

    def to_state(self) -> str:
        return self.hits.to_text()

    def restore(self, text: str) -> None:
        for value in unpack(text, "gate"):
            self.hits.push(value)


class RunSuppressor:
    """Keep the first alarm of a run; damp the others unless they escalate (see module docstring)."""

    def __init__(self, level: float, cooldown: int, damping: float, escalation: float) -> None:
        self.level, self.cooldown, self.damping, self.escalation = level, cooldown, damping, escalation
        self.since_alarm: int | None = None
        self.peak = 0.0  # highest alarm score of the current run
        self.peak_excess = 0.0  # farthest range break of the current run (range widths past it)

    def apply(self, score: float, excess: float = 0.0) -> float:
        """The score as kept or damped; `excess` > 0 for a range break, how far past the range it lies."""
        if self.since_alarm is not None:
            self.since_alarm += 1
        if score < self.level:
            return score
        in_run = self.since_alarm is not None and self.since_alarm <= self.cooldown
        self.since_alarm = 0
        if not in_run:
            self.peak, self.peak_excess = score, excess
            return score
        kept = score >= self.peak + self.escalation or excess > BREAK_ESCALATION * self.peak_excess > 0.0
        self.peak, self.peak_excess = max(self.peak, score), max(self.peak_excess, excess)
        return score if kept else score * self.damping

    def to_state(self) -> list[Any]:
        return [self.since_alarm, self.peak, self.peak_excess]

    def restore(self, state: list[Any]) -> None:
        since, peak, peak_excess = state
        self.since_alarm = None if since is None else int(since)
        self.peak, self.peak_excess = float(peak), float(peak_excess)
