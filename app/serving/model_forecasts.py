"""A registered model's lead-1 forecasts for a stream of readings, O(1) network work per reading.

`ModelForecasts` turns a trained `Forecaster` into the `expected` value the one detector
(`app.anomaly.detector.Detector`) scores a reading against; `score_reading` is the one loop that joins the two
(streams and both detect endpoints call it). Scoring, calibration and alarms live in the detector, not here.

How a forecast is made. `expect()` is the lead-1 median forecast of the next reading, made *before* it arrives
from the hidden state after the previous reading; `observe` advances the state with the reading by ONE
network step (`RecurrentStepper.step`). Nothing is forecast until `window` readings were observed.

Normalisation (the anchor). The models are trained with per-window (instance) statistics, which would need the
whole window re-run for every reading. Instead a (loc, scale) *anchor* is frozen, computed with the model's own
`Scaling.stats` from the last `window` values, and every new reading is scaled with it. Re-anchoring recomputes
the statistics from the last `window` values and re-runs the window once through the network: right after an
anchor the forecast equals `Forecaster.predict` on the same window exactly; between anchors the state has seen
window + k tokens and slightly stale statistics, so it drifts a little from a fresh window run.

When the anchor is refreshed (the level-shift bound). An anchor frozen for a whole window keeps the expected
line off after a level shift (issue 14): the new values, scaled with the old statistics, lie where the network
never saw values in training, and its output stays near the old level until the next re-anchor. So besides the
refresh every `window` readings, the window's mean and standard deviation (float64, a few microseconds) are
compared with those at the anchor, and the stream re-anchors as soon as the mean moved more than `DRIFT` (0.5)
anchor standard deviations or the standard deviation changed by more than a factor `SPREAD` (1.5), checked
from `MIN_GAP` (3) readings after an anchor on. A level shift of d window standard deviations therefore moves
the anchor within max(3, window / (2 d) + 1) readings (3 readings for a 5-noise-unit shift of a flat series
with a window of 24), and the anchor keeps following while the window fills with the new level. The anchor thus
never lags the window's statistics by more than `DRIFT` standard deviations for more than 3 readings, and the
forecasts stay those of `Forecaster.predict` on the recent window up to that lag: a level shift is absorbed as
fast as the model's own fresh-window forecasts absorb it, plus at most 3 readings. (Measured on a small trained
model, window 24, +/-5 noise units: the median |expected - value| is back at the noise level from the 10th
reading after the shift on; with the frozen anchor it stays at 1.8-3 noise units for the rest of the window.)

Cost: one step (one token) per reading, plus one window pass (window tokens in one `rnn` call per patch phase)
per anchor. Anchors come every `window` readings on stationary data and at most every 3 readings while the
statistics move (a transition of about one window after a shift), so the network work stays O(1) amortised.
On stationary hourly test series the drift rule added between no anchor and half again as many anchors as the
plain every-window schedule.

Patches (patch_len P > 1). The token grid of a window depends on where the window ends modulo P, so P hidden
states are kept, one per phase. A reading with absolute index n completes the patch ending at n: only the state
of phase n mod P is advanced, by one token, and its read-out is the forecast for reading n + 1. At an anchor each
phase is warmed on the window ending at its own most recent reading (the history keeps window + P - 1 values for
that); while fewer values exist, the older phases are warmed on the longest whole-patch suffix available.

Per-reading cost. The step is one token through the network's cells in numpy float32 on views of the
module's own weights (`app.serving.cell_step.RecurrentStepper`: a fraction of a torch module call), read out for
lead 1 only. It avoids every pandas path and all but two O(window) numpy reductions (the mean and standard
deviation of the drift check, over a float64 mirror of the last `window` values kept contiguous, so nothing is
converted per reading): the newest patch is read from the end of the history, its calendar encodings come from
lookup tables built once with `calendar_matrix` itself (bitwise the same float32 values, no pandas per reading,
nor per anchor), and the token is written into a reused buffer. Anchors run the window through the same
stepper (`RecurrentStepper.run`, token by token: bitwise the steps), cheaper than the torch module's `rnn` over
a sequence; forecasts right after an anchor agree with `Forecaster.predict` to float32 rounding (not bitwise:
the sums are ordered differently).

Determinism. The state (`to_state`) holds everything the next forecasts depend on, exactly (hidden states and
values packed as float64 bytes), so a restored `ModelForecasts` gives bitwise the same forecasts as one that ran
straight through. (The drift mirror is laid out by the reading count, so a restored one reduces the same values
at the same positions.)
"""

from __future__ import annotations

import math
from collections import deque
from datetime import datetime, timedelta
from functools import cache, lru_cache
from typing import Any

import numpy as np
import torch

from app.anomaly.detector import Detector
from app.anomaly.points import ScoredPoint
from app.anomaly.ring import pack, unpack
from app.errors import InvalidInputError
from app.forecasting.baselines import baseline_lags
from app.forecasting.calendar import calendar_matrix
from app.forecasting.forecaster import Forecaster
from app.serving.cell_step import LayerState, RecurrentStepper
from app.timestamps import from_state_iso, to_state_iso

STATE_KIND = "ModelForecasts"
STATE_VERSION = 1
DRIFT = 0.5  # re-anchor when the window's mean moved this many anchor standard deviations ...
SPREAD = 1.5  # ... or its standard deviation changed by more than this factor ...
MIN_GAP = 3  # ... checked from this many readings after an anchor on (bounds the anchor rate)
STD_FLOOR = 1e-12
UNFED: frozenset[str] = frozenset({"duplicate", "late", "missing"})


class ModelForecasts:
    """Hidden states + anchor of one series under one registered model (see module docstring)."""

    def __init__(self, forecaster: Forecaster) -> None:
        spec = forecaster.spec
        self.forecaster = forecaster
        self.window = spec.window
        self.patch_len = spec.patch_len
        capacity = self.window + self.patch_len - 1
        self.values: deque[float] = deque(maxlen=capacity)
        self.stamps: deque[datetime] = deque(maxlen=capacity)  # kept only when the model uses a calendar
        self.count = 0  # readings observed
        self.since_anchor = 0  # readings observed since the last anchor
        self.anchor: tuple[np.float32, np.float32] | None = None  # (loc, scale) the inputs are scaled with
        self.anchor_stats = (0.0, 1.0)  # (mean, std) float64 of the window at the anchor, for `_drifted`
        self.states: list[list[LayerState]] = []  # one per phase, after the first anchor
        self.pending: float | None = None  # the lead-1 median forecast of the next reading
        self._median = spec.median_index
        lags = baseline_lags(spec.baseline, spec.season, 1)  # [1]: where the lead-1 baseline copies from
        self._baseline_lag = 0 if lags is None else int(lags[0])  # 0: the plain network
        self._features = tuple(spec.calendar_features)
        self._calendar_rows: deque[np.ndarray] = deque(maxlen=capacity)  # [C] float32 per reading in `values`
        self._stepper = RecurrentStepper(forecaster.network, self._median)
        width = spec.features_per_step
        self._token_buffer = np.zeros((self.patch_len, width), dtype=np.float32)  # [P, 1 + C]
        self._token = self._token_buffer.reshape(self.patch_len * width)  # [F] view
        # the last `window` values (float64) twice over, by count mod window: the slice ending at the newest
        # reading's second copy is the window in order, contiguous, with no conversion per reading
        self._mirror = np.zeros(2 * self.window)
        self._deviations = np.zeros(self.window)  # scratch for `_window_stats`

    # ------------------------------------------------------------------ public
    def expect(self) -> float | None:
        """The lead-1 median forecast of the next reading; None until `window` readings were observed."""
        return self.pending

    def observe(self, timestamp: datetime | None, value: float) -> None:
        """Advance the state with one reading (naive UTC; `timestamp` may be None only without a calendar)."""
        value = float(value)
        if not math.isfinite(value):
            raise ValueError(f"value must be a finite number; got {value!r} (skip missing readings)")
        if self._features:
            if timestamp is None:
                raise ValueError("this model uses calendar features; timestamps are required")
            self.stamps.append(timestamp)
            self._calendar_rows.append(calendar_row(timestamp, self._features))
        self.values.append(value)
        self._mirror_value(self.count, value)
        self.count += 1
        if self.anchor is None:
            if self.count >= self.window:
                self._anchor()
            return
        self.since_anchor += 1
        if self.since_anchor >= self.window or (self.since_anchor >= MIN_GAP and self._drifted()):
            self._anchor()
        else:
            self._step()

    def _mirror_value(self, index: int, value: float) -> None:
        """Write the reading with absolute index `index` into both copies of the drift mirror."""
        slot = index % self.window
        self._mirror[slot] = value
        self._mirror[slot + self.window] = value

    def _window_stats(self) -> tuple[float, float]:
        """Mean and standard deviation (float64) of the last `window` values: a few microseconds.

        Bitwise `recent.mean()` and `recent.std()` (the same ufunc reductions numpy's own methods run), without
        their Python-level overhead and with the sum taken once.
        """
        end = (self.count - 1) % self.window + self.window + 1
        size = min(self.count, self.window)
        recent = self._mirror[end - size : end]
        mean = float(np.add.reduce(recent)) / size
        deviations = self._deviations[:size]
        np.subtract(recent, mean, out=deviations)
        np.multiply(deviations, deviations, out=deviations)
        return mean, math.sqrt(float(np.add.reduce(deviations)) / size)

    def _drifted(self) -> bool:
        """Whether the window's statistics have left the anchor's (see "When the anchor is refreshed")."""
        mean, std = self._window_stats()
        anchor_mean, anchor_std = self.anchor_stats
        return abs(mean - anchor_mean) > DRIFT * anchor_std or not (
            anchor_std / SPREAD <= std <= anchor_std * SPREAD
        )

    # ------------------------------------------------------------------ network
    def _step(self) -> None:
        """Advance the phase of the newest reading by one token: O(1) in the window length."""
        assert self.anchor is not None
        loc, scale = self.anchor
        patch = self.patch_len
        buffer = self._token_buffer  # [P, 1 + C], viewed as the token [P * (1 + C)]
        values = self.values
        rows = self._calendar_rows
        for offset in range(patch):  # oldest .. newest reading of the patch; same float32 ops as `tokens`
            buffer[offset, 0] = (np.float32(values[offset - patch]) - loc) / scale
            if rows:
                buffer[offset, 1:] = rows[offset - patch]  # [C]
        phase = (self.count - 1) % patch
        correction, self.states[phase] = self._stepper.step(self._token, self.states[phase])
        self.pending = self._unscale(correction)

    @torch.inference_mode()
    def _anchor(self) -> None:
        """Freeze new statistics from the last `window` values and re-run each phase's window once."""
        history = torch.tensor(list(self.values), dtype=torch.float32)[None, :]  # [1, N]
        loc, scale = self.forecaster.spec.scaling.stats(history[:, -self.window :])  # [1, 1] each
        self.anchor = (np.float32(loc.item()), np.float32(scale.item()))
        scaled = (history - loc) / scale  # [1, N]
        calendar = self._calendar()  # [1, N, C] or None
        newest_phase = (self.count - 1) % self.patch_len
        states: dict[int, list[LayerState]] = {}
        for back in range(self.patch_len):  # the phase's window ends `back` readings before the newest
            end = scaled.shape[1] - back
            length = min(self.window, end // self.patch_len * self.patch_len)
            state = self._stepper.initial()
            if length > 0:
                tokens = self.forecaster.tokens(
                    scaled[:, end - length : end],
                    None if calendar is None else calendar[:, end - length : end],
                )  # [1, length / P, F]
                last, state = self._stepper.run(tokens[0].numpy(), state)  # -> [hidden]
                if back == 0:  # the head on the last hidden state -> lead-1 median
                    self.pending = self._unscale(self._stepper.readout(last))
            states[(newest_phase - back) % self.patch_len] = state
        self.states = [states[phase] for phase in range(self.patch_len)]
        self.since_anchor = 0
        mean, std = self._window_stats()
        self.anchor_stats = (mean, max(std, STD_FLOOR))

    def _calendar(self) -> torch.Tensor | None:
        """The history's calendar encodings from the per-reading rows (bitwise `Forecaster.calendar`)."""
        if not self._features:
            return None
        return torch.from_numpy(np.stack(self._calendar_rows))[None]  # N x [C] -> [1, N, C]

    def _unscale(self, correction: np.float32) -> float:
        """Lead-1 median in data units from the scaled one (the same float32 ops as `Forecaster.predict`)."""
        assert self.anchor is not None
        loc, scale = self.anchor
        if self._baseline_lag:  # the network corrects a naive forecast: add its scaled lead-1 value back
            correction = correction + (np.float32(self.values[-self._baseline_lag]) - loc) / scale
        median = correction * scale + loc
        if not math.isfinite(median):
            raise InvalidInputError(
                "the model produced a non-finite forecast; the values are too large in magnitude "
                "(or spread) for single-precision inference, so rescale them (e.g. to other units)"
            )
        return float(median)

    # ------------------------------------------------------------------ state
    def to_state(self) -> dict[str, Any]:
        """JSON-ready state; `from_state` with the same model restores it exactly."""
        return {
            "kind": STATE_KIND,
            "version": STATE_VERSION,
            "spec": _spec_key(self.forecaster),
            "count": self.count,
            "since_anchor": self.since_anchor,
            "anchor_stats": list(self.anchor_stats),
            "values": pack(self.values),
            "timestamps": [to_state_iso(stamp) for stamp in self.stamps],
            "anchor": None if self.anchor is None else [float(self.anchor[0]), float(self.anchor[1])],
            "hidden": [pack(self._stepper.flat(state).astype(np.float64)) for state in self.states],
            "pending": self.pending,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any], forecaster: Forecaster) -> ModelForecasts:
        """Restore a state written by `to_state` for this model; ValueError when it belongs to another one."""
        if state.get("kind") != STATE_KIND or state.get("version") != STATE_VERSION:
            raise ValueError(
                f"not a {STATE_KIND} state of version {STATE_VERSION}; got kind {state.get('kind')!r}, "
                f"version {state.get('version')!r}"
            )
        expected = _spec_key(forecaster)
        if state.get("spec") != expected:
            raise ValueError(
                f"the {STATE_KIND} state was built for a model with {state.get('spec')}, not this model's "
                f"{expected}; start a new ModelForecasts for this model"
            )
        forecasts = cls(forecaster)
        forecasts.count = int(state["count"])
        forecasts.since_anchor = int(state["since_anchor"])
        mean, std = state["anchor_stats"]
        forecasts.anchor_stats = (float(mean), float(std))
        forecasts.values.extend(unpack(state["values"], "values"))
        first = forecasts.count - len(forecasts.values)
        for index, value in enumerate(forecasts.values, start=first):
            forecasts._mirror_value(index, value)
        forecasts.stamps.extend(from_state_iso(stamp) for stamp in state["timestamps"])
        for stamp in forecasts.stamps:
            forecasts._calendar_rows.append(calendar_row(stamp, forecasts._features))
        if state["anchor"] is not None:
            loc, scale = state["anchor"]
            forecasts.anchor = (np.float32(loc), np.float32(scale))
        stepper = forecasts._stepper
        forecasts.states = [stepper.unflat(np.asarray(unpack(text, "hidden"))) for text in state["hidden"]]
        forecasts.pending = None if state["pending"] is None else float(state["pending"])
        return forecasts


def score_reading(
    detector: Detector,
    forecasts: ModelForecasts | None,
    timestamp: datetime | None,
    value: float | None,
) -> ScoredPoint:
    """Score one reading (against the model's forecast when there is one), then feed it to the forecasts.

    Duplicate, late and missing readings are not fed to the detector, so they do not advance the forecasts.
    """
    expected = forecasts.expect() if forecasts is not None else None
    point = detector.update(timestamp, value, expected)
    if forecasts is not None and value is not None and point.sampling not in UNFED:
        forecasts.observe(timestamp, value)
    return point


def _spec_key(forecaster: Forecaster) -> dict[str, Any]:
    """What a state must match: the parts of the spec that shape the history, the tokens and the hidden states."""
    spec = forecaster.spec
    return {
        "window": spec.window,
        "patch_len": spec.patch_len,
        "calendar_features": list(spec.calendar_features),
        "cell": spec.network.cell,
        "layers": spec.network.num_layers,
        "hidden": spec.network.hidden_size,
    }


# -------------------------------------------------------------------- calendar rows without pandas
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
    """`calendar_matrix([stamp], features)[0]` by table look-up (bitwise identical, no pandas): [C] float32.

    Read only: rows are shared between the readings with the same encodings.
    """
    return _calendar_row(features, tuple(_calendar_key(stamp, feature) for feature in features))


def _calendar_key(stamp: datetime, feature: str) -> int:
    """The row of `_calendar_table(feature)` that encodes `stamp`."""
    if feature == "hour_of_day":
        return stamp.hour * 60 + stamp.minute
    if feature == "day_of_week":
        return stamp.weekday()
    if feature == "day_of_year":
        return stamp.timetuple().tm_yday - 1
    if feature == "month_of_year":
        return stamp.month - 1
    raise ValueError(f"unknown calendar feature {feature!r}")


@lru_cache(maxsize=4096)
def _calendar_row(features: tuple[str, ...], keys: tuple[int, ...]) -> np.ndarray:
    parts = [_calendar_table(feature)[key] for feature, key in zip(features, keys, strict=True)]
    row = np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)
    row.setflags(write=False)
    return row
