"""ScoreCalibrator: empirical tail with forgetting, extrapolated past the data; the packed rings."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from app.anomaly.ring import RankedRing, pack, unpack
from app.anomaly.score_calibration import ScoreCalibrator


def fed(scores: np.ndarray) -> ScoreCalibrator:
    calibrator = ScoreCalibrator()
    for score in scores:
        calibrator.add(float(score))
    return calibrator


def test_tail_is_monotone_and_resolves_rare_rates_beyond_the_data() -> None:
    calibrator = fed(np.random.default_rng(0).uniform(0.0, 0.3, 500))
    grid = [0.05 * i for i in range(20)]  # below 1: a score of 1 is an atom (next test)
    tails = [calibrator.tail(x) for x in grid]
    assert all(0.0 < t <= 1.0 for t in tails)
    assert all(a >= b for a, b in itertools.pairwise(tails))
    assert calibrator.tail(0.6) < 1e-4  # far beyond every score seen: the fitted tail answers
    assert calibrator.tail(0.31) > calibrator.tail(0.5)  # and keeps ordering there (no ceiling)


def test_a_score_of_one_gets_its_empirical_fraction() -> None:
    calibrator = fed(np.random.default_rng(0).uniform(0.0, 0.3, 999))
    assert calibrator.tail(1.0) == pytest.approx(1 / 1000, rel=0.05)  # never seen: (0 + 1) / (N + 1)
    calibrator.add(1.0)
    assert calibrator.tail(1.0) == pytest.approx(1.5 / 1001, rel=0.05)


def test_empirical_fraction_inside_the_data() -> None:
    calibrator = fed(np.linspace(0.0, 0.999, 1000))
    assert calibrator.tail(0.5) == pytest.approx(0.5, abs=0.01)
    assert calibrator.tail(0.0) == 1.0


def test_state_round_trip_is_exact() -> None:
    calibrator = fed(np.random.default_rng(1).uniform(0.0, 1.0, 300))
    restored = ScoreCalibrator.from_state(calibrator.to_state())
    assert [restored.tail(x) for x in (0.1, 0.5, 0.99)] == [calibrator.tail(x) for x in (0.1, 0.5, 0.99)]


def test_packing_is_exact_and_refuses_garbage() -> None:
    values = [0.1, -2.5e-300, 1e300, 3.0]
    assert unpack(pack(values), "x") == values
    with pytest.raises(ValueError, match="'x'"):
        unpack("not base64!", "x")
    with pytest.raises(ValueError, match="whole number"):
        unpack("AAAA", "x")


def test_ranked_ring_ranks_among_its_window() -> None:
    ring = RankedRing(3, [1.0, 2.0, 3.0])
    ring.push(10.0)  # drops 1.0
    assert ring.sorted == [2.0, 3.0, 10.0]
    assert ring.rank(10.0) == 1.0 and ring.rank_below(2.0) == 1.0
    assert ring.quantile(0.5) == 3.0
