"""How unusual the recent ranks of a raw score are, as a log-scaled tail probability (streaming, O(1)).

In the spirit of Numenta's "anomaly likelihood": a raw score (a residual magnitude, a distance from the recent
median) is first turned into its rank among the recent raw scores (`RankedRing.rank`), a number in (0, 1]
whatever the series' scale. `RankLikelihood` averages the last `smoothing` ranks and compares that mean with
its own long-run distribution, tracked as an exponentially weighted mean and variance (half-life `memory`
points): the output is ``min(1, -log10(Q(z)) / DECADES)`` with Q the standard normal tail, so a score of 0.3
means p = 1e-3 on every series. One extreme point and a run of moderately unusual points (a pattern the
forecaster only partly misses) both raise the mean rank; a long `smoothing` catches slow, sustained changes.
"""

from __future__ import annotations

import math
from typing import Any, Self

from app.anomaly._validation import positive_int, real_number, state_field
from app.anomaly.ring import Ring, unpack

DECADES = 10.0  # a score of 1 is p = 1e-10; 0.1 per factor of ten in probability
MIN_SPREAD = 1e-4  # floor of the long-run standard deviation of the mean rank
MIN_MEANS = 50  # mean ranks seen before the likelihood scores (it answers 0 before)


def log_score(tail: float) -> float:
    """A tail probability on the detector's log scale: min(1, -log10(p) / DECADES)."""
    return min(1.0, max(0.0, -math.log10(max(tail, 1e-300)) / DECADES))


def score_to_tail(score: float) -> float:
    """The inverse of `log_score` below 1."""
    return float(10.0 ** (-score * DECADES))


class RankLikelihood:
    """Tail probability of the mean of the last `smoothing` ranks (see module docstring)."""

    def __init__(self, smoothing: int, memory: int) -> None:
        self.smoothing = positive_int("smoothing", smoothing)
        self.memory = positive_int("memory", memory, minimum=2)
        self.ranks = Ring(self.smoothing)
        self.count = 0  # mean ranks folded into the long-run statistics
        self.mean = 0.0  # exponentially weighted mean of the mean rank
        self.var = 0.0  # and its exponentially weighted variance

    def update(self, rank: float) -> float:
        """Score the mean rank including `rank` (in (0, 1]), then fold it into the long-run statistics."""
        self.ranks.push(rank)
        mean_rank = sum(self.ranks) / len(self.ranks)  # summed afresh: a restored state gives the same bits
        score = 0.0
        if self.count >= MIN_MEANS:
            z = (mean_rank - self.mean) / max(math.sqrt(self.var), MIN_SPREAD)
            score = log_score(0.5 * math.erfc(z / math.sqrt(2.0)))
        self._fold(mean_rank)
        return score

    def _fold(self, value: float) -> None:
        """Welford's update while young, then exponential forgetting with half-life `memory`."""
        self.count += 1
        weight = max(1.0 / self.count, math.log(2.0) / self.memory)
        delta = value - self.mean
        self.mean += weight * delta
        self.var = (1.0 - weight) * (self.var + weight * delta * delta)

    def to_state(self) -> dict[str, Any]:
        return {
            "smoothing": self.smoothing,
            "memory": self.memory,
            "ranks": self.ranks.to_text(),
            "count": self.count,
            "mean": self.mean,
            "var": self.var,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Self:
        owner = cls.__name__
        likelihood = cls(state_field(state, "smoothing", owner), state_field(state, "memory", owner))
        for value in unpack(state_field(state, "ranks", owner), "ranks"):
            likelihood.ranks.push(value)
        likelihood.count = positive_int("state['count']", state_field(state, "count", owner), minimum=0)
        likelihood.mean = real_number("state['mean']", state_field(state, "mean", owner))
        likelihood.var = real_number("state['var']", state_field(state, "var", owner))
        return likelihood
