"""Per-series calibration of the final score into a false-alarm probability (streaming, O(bins)).

The rules before it (several likelihood channels, their maximum, range breaks, gates, run suppression) make a
score whose tail probability on normal data is not the nominal one: the maximum of several channels alarms more
often than each, and gates and suppression remove alarms. `ScoreCalibrator` measures instead. It keeps an
exponentially forgetting histogram (half-life `HALF_LIFE` readings) of the series' own uncalibrated scores, and
answers for a new score the fraction of the history at or above it, (S + 1) / (N + 1). Where fewer than
`TAIL_MASS` readings of the history lie at or above the score, an exponential tail fitted to the top of the
history extrapolates, so every documented false-alarm rate (down to 1e-4) can be reached after a short learning
period and no score saturates at the largest one seen. Scores of 1 (a break of the range of every earlier
value) are an atom at the top of the scale, judged by how often this series breaks its range: they get the
plain empirical fraction (so a 1 is not necessarily rarer than 0.99, whose rarity the tail measures). The
detector flags a *far* break (a value well outside everything seen) whatever this says.
"""

from __future__ import annotations

import math
from typing import Any, Self

from app.anomaly.ring import pack, unpack

BINS = 500  # histogram bins over [0, 1]
HALF_LIFE = 20_000.0  # readings
MIN_HISTORY = 50.0  # readings recorded before any tail probability below 1 is answered
TAIL_MASS = 15.0  # readings at or above a score below which the tail model answers
MIN_EXCESS = 0.01  # floor of the tail's mean excess (score units)
_DECAY = 2.0 ** (-1.0 / HALF_LIFE)
_RESCALE = 1e100


class ScoreCalibrator:
    """Histogram of past scores with forgetting, and a fitted exponential tail (see module docstring)."""

    def __init__(self) -> None:
        self.mass = [0.0] * BINS  # unnormalised: a new reading adds `weight`
        self.weight = 1.0  # grows by 1 / decay per reading instead of decaying every bin

    def tail(self, score: float) -> float:
        """Fraction of past readings scoring at least `score`, with the tail model beyond the data; 1.0 while
        the history holds fewer than `MIN_HISTORY` readings."""
        total = math.fsum(self.mass) / self.weight  # effective readings in the history
        if score <= 0.0 or total < MIN_HISTORY:
            return 1.0
        index = _bin(score)
        above = (math.fsum(self.mass[index + 1 :]) + 0.5 * self.mass[index]) / self.weight  # mid-rank
        if (
            above >= TAIL_MASS or index == BINS - 1
        ):  # the top bin is an atom (score 1): nothing lies beyond it
            return (above + 1.0) / (total + 1.0)
        return self._extrapolate(score, total)

    def _extrapolate(self, score: float, total: float) -> float:
        """(T + 1)/(N + 1) * exp(-(score - u) / excess) from the lowest level u with T = TAIL_MASS above it;
        the excess scale is the median excess over u / ln 2 (an exponential tail's), robust to a few scores of 1."""
        cumulative, index = 0.0, BINS
        while index > 0 and cumulative < TAIL_MASS * self.weight:
            index -= 1
            cumulative += self.mass[index]
        level = index / BINS
        excess = max(MIN_EXCESS, self._median_excess(index, cumulative) / math.log(2.0))
        base = (cumulative / self.weight + 1.0) / (total + 1.0)
        return min(1.0, base * math.exp(-max(0.0, score - level) / excess))

    def _median_excess(self, index: int, cumulative: float) -> float:
        """Median of (score - level) over the mass from bin `index` up: robust to a few scores of 1."""
        running = 0.0
        for i in range(index, BINS):
            running += self.mass[i]
            if running >= 0.5 * cumulative:
                return (i + 0.5) / BINS - index / BINS
        return 1.0 - index / BINS

    def add(self, score: float) -> None:
        self.weight /= _DECAY
        self.mass[_bin(score)] += self.weight
        if self.weight > _RESCALE:
            self.mass = [m / self.weight for m in self.mass]
            self.weight = 1.0

    def to_state(self) -> list[Any]:
        return [pack(self.mass), self.weight]

    @classmethod
    def from_state(cls, state: list[Any]) -> Self:
        calibrator = cls()
        mass = unpack(state[0], "calibrator")
        if len(mass) != BINS:
            raise ValueError(f"state['calibrator'] has {len(mass)} bins; expected {BINS}")
        calibrator.mass, calibrator.weight = mass, float(state[1])
        return calibrator


def _bin(score: float) -> int:
    return min(BINS - 1, max(0, int(score * BINS)))
