"""Incremental scoring of one stream: O(1) network work per point, state kept as a JSON dict (no DB here).

How a point is scored. The lead-1 forecast for the next point is made *before* it arrives, from the hidden state
after the previous point; when the point arrives it is scored against that forecast (`SpreadResidualScorer` ->
`AdaptiveCalibrator` built on the served model's calibrator -> flag at `sensitivity_to_alpha`), the flag feeds an
`AlarmPolicy` (opened / resolved episode events), and only then is the state advanced with the point by ONE
`network.step`. The first `window` points only fill the history (no forecast, score None).

Normalisation. The models are trained with per-window (instance) statistics, which would need the whole window
re-run for every point. Instead a (loc, scale) *anchor* is frozen, computed with the model's own `Scaling.stats`
from the last `window` values, and every new point is scaled with it. Every `window` points the stream
re-anchors: it recomputes the statistics from the last `window` values and re-runs the window once through the
network. That is O(window) work every `window` points, i.e. amortised O(1) per point (the worst single point
costs one window pass). Right after an anchor the lead-1 forecast equals `Forecaster.predict` on the same window
exactly; between anchors the state has seen window + k tokens (k < window) and stale statistics, so it drifts
slightly from a fresh window run (bounded because the anchor is refreshed every window).

Patches (patch_len P > 1). The token grid of a window depends on where the window ends modulo P, so the scorer
keeps P hidden states, one per phase. A point with absolute index n completes the patch ending at n: only the
state of phase n mod P is advanced, by one token, and its read-out is the forecast for point n + 1. At an anchor
each phase is warmed on the window ending at its own most recent point (the history keeps window + P - 1 values
for that). On the very first anchor only `window` values exist, so the older phases are warmed on the longest
whole-patch suffix available (window - P values): after their next token they have seen exactly one window.

Per-point cost. The O(1) step avoids every O(window) or pandas path: the newest patch is read from the ends of
the history deques, its calendar encodings come from lookup tables built once with `calendar_matrix` itself
(bitwise the same float32 values, no pandas per point), the token is written into a reused buffer, and the
residual is computed with scalar float64 arithmetic that reproduces `SpreadResidualScorer` exactly (levels
validated once). The anchor still uses the batch paths (`calendar_matrix`, `Forecaster.tokens`).

Model changes. `StreamScorer.from_state` rebuilds the state from the stored recent values when the served
model differs from the one the state was built with (e.g. the alias moved): the network state and anchor are
recomputed, the adaptive calibrator restarts on the new model's calibration, the alarm policy carries over.
"""

from __future__ import annotations

import math
from collections import deque
from datetime import datetime, timedelta
from functools import cache
from typing import Any

import numpy as np
import torch

from app.anomaly import (
    AdaptiveCalibrator,
    AlarmEvent,
    AlarmPolicy,
    ConformalCalibrator,
    SpreadResidualScorer,
    sensitivity_to_alpha,
)
from app.anomaly.points import ScoredPoint
from app.anomaly.residuals import DOWN, UP, validate_levels
from app.anomaly.sensitivity import score_threshold, validate_sensitivity
from app.errors import InvalidInputError
from app.forecasting.calendar import calendar_matrix
from app.forecasting.forecaster import Forecaster
from app.forecasting.network import HiddenState
from app.timestamps import datetime64_to_naive, to_state_iso

STATE_KIND = "StreamScorer"
STATE_VERSION = 1


class StreamScorer:
    """Hidden state + anchor + calibrator + alarm policy of one stream (see module docstring)."""

    def __init__(
        self,
        forecaster: Forecaster,
        calibrator: ConformalCalibrator,
        sensitivity: float,
        model_name: str = "",
        model_version: int = 0,
    ) -> None:
        self.forecaster = forecaster
        self.model_name = model_name
        self.model_version = model_version
        self.sensitivity = validate_sensitivity(sensitivity)
        self.residuals = SpreadResidualScorer()
        self.calibrator = AdaptiveCalibrator(calibrator, alpha=sensitivity_to_alpha(self.sensitivity))
        self.policy = AlarmPolicy()
        capacity = self.window + self.patch_len - 1
        self.values: deque[float] = deque(maxlen=capacity)
        self.timestamps: deque[np.datetime64] = deque(maxlen=capacity)
        self.point_count = 0
        self.since_anchor = 0
        self.loc: torch.Tensor | None = None  # [1, 1] float32
        self.scale: torch.Tensor | None = None  # [1, 1] float32
        self.states: list[HiddenState] = []  # one per phase, after an anchor
        self.pending: np.ndarray | None = None  # [Q] float64 lead-1 quantiles for the next point
        # per-point fast path (derived, never stored): see "Per-point cost" in the module docstring
        spec = forecaster.spec
        self._features = tuple(spec.calendar_features)
        self._calendar_rows: deque[np.ndarray] = deque(maxlen=self.patch_len)  # [C] float32 per recent point
        self._iso: deque[str] = deque(maxlen=capacity)  # `timestamps` as ISO text, for `to_state`
        self._last: datetime | None = None  # newest timestamp as a datetime
        self._anchor_loc = np.float32(0.0)
        self._anchor_scale = np.float32(1.0)
        width = 1 + 2 * len(self._features)
        self._token_buffer = np.zeros((1, self.patch_len, width), dtype=np.float32)  # [1, P, 1 + C]
        self._token = torch.from_numpy(self._token_buffer).view(1, self.patch_len * width)  # [1, F] view
        self._reader = _LevelReader(self.residuals, spec.quantiles)

    # ---------------------------------------------------------------- properties
    @property
    def window(self) -> int:
        return self.forecaster.spec.window

    @property
    def patch_len(self) -> int:
        return self.forecaster.spec.patch_len

    @property
    def last_timestamp(self) -> datetime | None:
        if self._last is None and self.timestamps:
            self._last = datetime64_to_naive(self.timestamps[-1])
        return self._last

    def set_sensitivity(self, sensitivity: float) -> None:
        """Change the flag threshold, keeping the learnt residual scale."""
        value = validate_sensitivity(sensitivity)
        if value == self.sensitivity:
            return
        previous = self.calibrator
        self.calibrator = AdaptiveCalibrator(previous.base, alpha=sensitivity_to_alpha(value))
        self.calibrator.running_scale = previous.running_scale
        self.calibrator.n_updates = previous.n_updates
        self.sensitivity = value

    # ---------------------------------------------------------------- per point
    @torch.inference_mode()
    def append(self, timestamp: datetime, value: float) -> tuple[ScoredPoint, list[AlarmEvent]]:
        """Score one point against the forecast made before it, then advance the state with it."""
        self._check_point(timestamp, value)
        scored, events = self._score(timestamp, float(value))
        self.values.append(float(value))
        self.timestamps.append(np.datetime64(timestamp, "ns"))
        self._last = datetime64_to_naive(self.timestamps[-1])  # as stored (microsecond precision)
        self._iso.append(to_state_iso(self._last))
        if self._features:
            self._calendar_rows.append(calendar_row(self._last, self._features))
        self.point_count += 1
        self._advance()
        return scored, events

    def _check_point(self, timestamp: datetime, value: float) -> None:
        if not math.isfinite(value):
            raise InvalidInputError(f"value at {to_state_iso(timestamp)} is not a finite number")
        last = self.last_timestamp
        if last is not None and timestamp <= last:
            raise InvalidInputError(
                f"timestamp {to_state_iso(timestamp)} is not after the stream's last point ({to_state_iso(last)})"
            )

    def _score(self, timestamp: datetime, value: float) -> tuple[ScoredPoint, list[AlarmEvent]]:
        if self.pending is None:
            empty = ScoredPoint(self.point_count, timestamp, value, None, None, None, None, False, None)
            return empty, []
        magnitude, signed, expected, lower, upper = self._reader.residual(value, self.pending)
        direction = UP if signed >= 0 else DOWN
        score = self.calibrator.update_and_score(magnitude)
        flagged = bool(score >= score_threshold(self.calibrator.alpha))
        events = self.policy.step(
            to_state_iso(timestamp), flagged, score, direction, value, expected, lower, upper
        )
        scored = ScoredPoint(
            index=self.point_count,
            timestamp=timestamp,
            value=value,
            expected=expected,
            lower=lower,
            upper=upper,
            score=float(score),
            is_anomaly=flagged,
            direction=direction if flagged else None,
        )
        return scored, events

    def _advance(self) -> None:
        if self.loc is None:
            if len(self.values) >= self.window:
                self._anchor()
            return
        self.since_anchor += 1
        if self.since_anchor >= self.window:
            self._anchor()
        else:
            self._step()

    def _step(self) -> None:
        """Advance the phase of the newest point by one token: O(1) in the window length."""
        assert self.loc is not None and self.scale is not None
        patch = self.patch_len
        phase = (self.point_count - 1) % patch
        buffer = self._token_buffer  # [1, P, 1 + C], viewed as the token [1, P * (1 + C)]
        values = self.values
        for offset in range(patch):  # oldest .. newest point of the patch; same float32 ops as `tokens`
            raw = np.float32(values[offset - patch])
            buffer[0, offset, 0] = (raw - self._anchor_loc) / self._anchor_scale
        if self._features:
            buffer[0, :, 1:] = self._calendar_rows  # [P, C]
        output, self.states[phase] = self.forecaster.network.step(
            self._token, self.states[phase]
        )  # [1, H, Q]
        self.pending = self._unscale(output)

    def _anchor(self) -> None:
        """Freeze new statistics from the last `window` values and re-run each phase's window once."""
        network = self.forecaster.network
        network.eval()
        history = torch.tensor(list(self.values), dtype=torch.float32)[None, :]  # [1, N]
        self.loc, self.scale = self.forecaster.spec.scaling.stats(history[:, -self.window :])  # [1, 1] each
        self._set_anchor_scalars()
        scaled = (history - self.loc) / self.scale  # [1, N]
        calendar = self._calendar(list(self.timestamps))  # [1, N, C] or None
        newest_phase = (self.point_count - 1) % self.patch_len
        states: dict[int, HiddenState] = {}
        for back in range(self.patch_len):  # back = how many points before the newest the phase's window ends
            end = scaled.shape[1] - back
            length = min(self.window, end // self.patch_len * self.patch_len)
            state = network.initial_state(1)
            if length > 0:
                tokens = self.forecaster.tokens(
                    scaled[:, end - length : end],
                    None if calendar is None else calendar[:, end - length : end],
                )  # [1, length / P, F]
                outputs, state = network.rnn(tokens, state)  # -> [1, T, hidden]
                if back == 0:
                    self.pending = self._unscale(network.readout(outputs[:, -1]))  # [1, hidden] -> [1, H, Q]
            states[(newest_phase - back) % self.patch_len] = state
        self.states = [states[phase] for phase in range(self.patch_len)]
        self.since_anchor = 0

    def _calendar(self, stamps: list[np.datetime64]) -> torch.Tensor | None:
        if not self.forecaster.uses_calendar:
            return None
        encoded = self.forecaster.calendar(np.array(stamps, dtype="datetime64[ns]"))  # [N] -> [N, C]
        return torch.from_numpy(encoded)[None]  # [1, N, C]

    def _set_anchor_scalars(self) -> None:
        assert self.loc is not None and self.scale is not None
        self._anchor_loc = np.float32(self.loc.item())
        self._anchor_scale = np.float32(self.scale.item())

    def _unscale(self, output: torch.Tensor) -> np.ndarray:
        """Lead-1 quantiles in data units: [1, H, Q] -> [Q] float64 (same float32 ops as `predict`)."""
        lead_one = output[0, 0].numpy() * self._anchor_scale + self._anchor_loc  # [Q] float32
        result = lead_one.astype(np.float64)
        if not np.isfinite(result).all():
            raise InvalidInputError(
                "the model produced a non-finite forecast; the stream's values are too large in magnitude "
                "(or spread) for single-precision inference, so rescale them (e.g. to other units)"
            )
        return result

    # ---------------------------------------------------------------- state
    def _anchor_state(self) -> dict[str, float] | None:
        if self.loc is None or self.scale is None:
            return None
        return {"loc": float(self.loc), "scale": float(self.scale)}

    def to_state(self) -> dict[str, Any]:
        """JSON-serialisable state (the calibrator's base sample is left out: it comes from the model)."""
        calibrator = self.calibrator.to_state()
        calibrator.pop("base")
        return {
            "kind": STATE_KIND,
            "format": STATE_VERSION,
            "model": {"name": self.model_name, "version": self.model_version},
            "window": self.window,
            "patch_len": self.patch_len,
            "sensitivity": self.sensitivity,
            "point_count": self.point_count,
            "since_anchor": self.since_anchor,
            "values": list(self.values),
            "timestamps": list(self._iso),
            "anchor": self._anchor_state(),
            "hidden": [_hidden_to_json(state) for state in self.states],
            "pending": None if self.pending is None else self.pending.tolist(),
            "calibrator": calibrator,
            "policy": self.policy.to_state(),
        }

    @classmethod
    def from_state(
        cls,
        state: dict[str, Any],
        forecaster: Forecaster,
        calibrator: ConformalCalibrator,
        model_name: str = "",
        model_version: int = 0,
    ) -> StreamScorer:
        """Restore exactly when `state` belongs to this model; otherwise rebuild from the stored history."""
        if state.get("kind") != STATE_KIND or state.get("format") != STATE_VERSION:
            raise ValueError(
                f"not a {STATE_KIND} state (format {STATE_VERSION}); got kind {state.get('kind')!r}"
            )
        same_model = state["model"] == {"name": model_name, "version": model_version}
        if (
            not same_model
            or state["window"] != forecaster.spec.window
            or state["patch_len"] != forecaster.spec.patch_len
        ):
            return cls._rebuilt(state, forecaster, calibrator, model_name, model_version)
        scorer = cls(forecaster, calibrator, state["sensitivity"], model_name, model_version)
        scorer._restore_history(state)
        scorer.since_anchor = int(state["since_anchor"])
        if state["anchor"] is not None:
            scorer.loc = torch.tensor([[state["anchor"]["loc"]]], dtype=torch.float32)
            scorer.scale = torch.tensor([[state["anchor"]["scale"]]], dtype=torch.float32)
            scorer._set_anchor_scalars()
        scorer.states = [_hidden_from_json(item) for item in state["hidden"]]
        scorer.pending = None if state["pending"] is None else np.asarray(state["pending"], dtype=np.float64)
        scorer.calibrator = AdaptiveCalibrator.from_state(
            {**state["calibrator"], "base": calibrator.to_state()}
        )
        scorer.policy = AlarmPolicy.from_state(state["policy"])
        return scorer

    @classmethod
    def _rebuilt(
        cls,
        state: dict[str, Any],
        forecaster: Forecaster,
        calibrator: ConformalCalibrator,
        model_name: str,
        model_version: int,
    ) -> StreamScorer:
        """A new model's scorer over the stored recent values; the alarm policy (open episodes) carries over."""
        scorer = cls(forecaster, calibrator, state["sensitivity"], model_name, model_version)
        scorer._restore_history(state)
        scorer.policy = AlarmPolicy.from_state(state["policy"])
        with torch.inference_mode():
            if len(scorer.values) >= scorer.window:
                scorer._anchor()
        return scorer

    def _restore_history(self, state: dict[str, Any]) -> None:
        self.point_count = int(state["point_count"])
        self.values.extend(float(value) for value in state["values"])
        self.timestamps.extend(np.datetime64(stamp, "ns") for stamp in state["timestamps"])
        self._iso.extend(to_state_iso(datetime64_to_naive(stamp)) for stamp in self.timestamps)
        if self._features:
            recent = list(self.timestamps)[-self.patch_len :]
            self._calendar_rows.extend(
                calendar_row(datetime64_to_naive(stamp), self._features) for stamp in recent
            )


# -------------------------------------------------------------------- per-point helpers
_TABLE_START = datetime(2024, 1, 1)  # a Monday of a leap year
_TABLE_ROWS = {"hour_of_day": 24 * 60, "day_of_week": 7, "day_of_year": 366, "month_of_year": 12}


@cache
def _calendar_table(feature: str) -> np.ndarray:
    """Every distinct encoding of one feature, computed by `calendar_matrix` itself: [K, 2] float32.

    Rows: hour_of_day by minute of the day (the encoding reads hour + minute / 60), day_of_week by weekday
    (Monday = 0), day_of_year by day - 1, month_of_year by month - 1.
    """
    if feature == "hour_of_day":
        stamps = [_TABLE_START + timedelta(minutes=k) for k in range(_TABLE_ROWS[feature])]
    elif feature in ("day_of_week", "day_of_year"):
        stamps = [_TABLE_START + timedelta(days=k) for k in range(_TABLE_ROWS[feature])]
    elif feature == "month_of_year":
        stamps = [datetime(2024, month, 1) for month in range(1, 13)]
    else:
        raise ValueError(f"unknown calendar feature {feature!r}")
    table = calendar_matrix(np.array(stamps, dtype="datetime64[ns]"), [feature])
    table.setflags(write=False)
    return table


def calendar_row(stamp: datetime, features: tuple[str, ...]) -> np.ndarray:
    """`calendar_matrix([stamp], features)[0]` by table look-up (bitwise identical, no pandas): [C] float32."""
    parts = []
    for feature in features:
        if feature == "hour_of_day":
            key = stamp.hour * 60 + stamp.minute
        elif feature == "day_of_week":
            key = stamp.weekday()
        elif feature == "day_of_year":
            key = stamp.timetuple().tm_yday - 1
        elif feature == "month_of_year":
            key = stamp.month - 1
        else:
            raise ValueError(f"unknown calendar feature {feature!r}")
        parts.append(_calendar_table(feature)[key])
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)


class _LevelReader:
    """`SpreadResidualScorer.score` for one value and one sorted, finite quantile row, in scalar float64.

    Reproduces `_interval_core` / `_signed_core` operation by operation (same IEEE double arithmetic), with
    the levels validated once instead of per point.
    """

    def __init__(self, scorer: SpreadResidualScorer, quantile_levels: tuple[float, ...]) -> None:
        levels = validate_levels(quantile_levels)
        scorer._check_levels_cover(levels)
        self.relative_floor = scorer.relative_floor
        self.absolute_floor = scorer.absolute_floor
        low, mid, high = scorer.levels
        self.expected, self.lower, self.upper = (_level_reader(levels, level) for level in (mid, low, high))

    def residual(self, value: float, quantiles: np.ndarray) -> tuple[float, float, float, float, float]:
        """(magnitude, signed, expected, lower, upper) of `value` against `quantiles` [Q]."""
        ordered = sorted(quantiles.tolist())  # the forecast is already sorted; kept for exactness
        expected, lower, upper = (
            _read(ordered, reader) for reader in (self.expected, self.lower, self.upper)
        )
        residual = value - expected
        floor = max(self.relative_floor * (abs(expected) + (upper - lower)), self.absolute_floor)
        spread = upper - expected if residual >= 0 else expected - lower
        signed = residual / max(spread, floor)
        return abs(signed), signed, expected, lower, upper


def _level_reader(levels: np.ndarray, level: float) -> tuple[int, float | None]:
    """(column, None) for an exact level, else (right neighbour, weight), as in `residuals._quantile_at`."""
    exact = np.flatnonzero(np.abs(levels - level) <= 1e-9)
    if exact.size:
        return int(exact[0]), None
    right = int(np.searchsorted(levels, level))
    weight = (level - levels[right - 1]) / (levels[right] - levels[right - 1])
    return right, float(weight)


def _read(ordered: list[float], reader: tuple[int, float | None]) -> float:
    column, weight = reader
    if weight is None:
        return ordered[column]
    return (1.0 - weight) * ordered[column - 1] + weight * ordered[column]


def _hidden_to_json(state: HiddenState) -> Any:
    """[layers, 1, hidden] tensors -> nested lists (float32 values are exact in JSON floats)."""
    if isinstance(state, tuple):
        return [state[0].tolist(), state[1].tolist()]
    return state.tolist()


def _hidden_from_json(data: Any) -> HiddenState:
    tensor = torch.tensor(data, dtype=torch.float32)  # [layers, 1, hidden] or [2, layers, 1, hidden]
    if tensor.dim() == 4:
        return (tensor[0].contiguous(), tensor[1].contiguous())
    return tensor
