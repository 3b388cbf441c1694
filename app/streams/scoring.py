"""The scoring state of one stream: the one detector, a registered model's forecasts (model-bound streams) and
the alarm policy, kept as one versioned JSON dict (no database here).

Every reading goes through `score_reading` (`app.serving.model_forecasts`), the same loop the detect endpoints
use, so a stream and a batch give bitwise the same scores for the same readings. Only scored points (score not
None) feed the `AlarmPolicy`. A reading's `index` is its position in the stream: it keeps counting every reading
ever appended, also across a detector reset (`position`).

State (`to_state`), version 2:
    {"kind": "Stream", "version": 2, "position": int, "detector": Detector state,
     "forecasts": ModelForecasts state | None, "policy": AlarmPolicy state,
     "model": name | None, "model_version": int | None}

Model binding (`bind`). A self-learning stream has no forecasts. A model-bound stream's forecasts belong to one
model version; when the version that serves the stream changes (alias moved, new default, pin changed) the
forecasts are rebuilt: a new `ModelForecasts` for the new version, which forecasts once it has observed `window`
new readings. The detector keeps learning throughout; until the new forecasts are ready it scores against its own
self-learned forecaster.

Upgrade from version 1 (kind "StreamScorer", the scorer of the trained-model-only streams): the detector starts
learning afresh, first fed the recent values and timestamps the old state holds (its answers discarded: those
readings were scored already), the alarm policy (an open alarm) is carried over, the position continues, and a
model-bound stream's forecasts are rebuilt from the same recent readings.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from app.anomaly import AlarmEvent, AlarmPolicy, Detector, DetectorConfig
from app.anomaly.detector import DetectorState
from app.anomaly.points import ScoredPoint
from app.forecasting.forecaster import Forecaster
from app.serving.model_forecasts import ModelForecasts, score_reading
from app.timestamps import from_epoch_seconds, from_state_iso, to_state_iso

STATE_KIND = "Stream"
STATE_VERSION = 2
LEGACY_KIND = "StreamScorer"  # version 1 (its version was under "format")

Reading = tuple[datetime, float | None]  # naive UTC timestamp, value (None = a missing reading)


@dataclass(frozen=True)
class ServingModel:
    """The registered model version that serves a model-bound stream right now."""

    name: str
    version: int
    forecaster: Forecaster


@dataclass(frozen=True)
class DetectorStatus:
    """What a stream's answer shows about its detector."""

    state: DetectorState
    points_until_ready: int
    learning_points: int
    refits: int
    last_refit_at: datetime | None  # naive UTC of the reading at which the current weights were fitted
    weights_age_points: int | None  # readings fed since the current weights were fitted; None while learning


class StreamState:
    """Detector + forecasts + alarm policy of one stream (see module docstring). One caller at a time."""

    def __init__(
        self,
        detector: Detector,
        policy: AlarmPolicy | None = None,
        position: int = 0,
        model: str | None = None,
        model_version: int | None = None,
    ) -> None:
        self.detector = detector
        self.policy = policy or AlarmPolicy()
        self.position = position  # the next reading's index in the stream
        self.model = model
        self.model_version = model_version
        self.forecasts: ModelForecasts | None = None
        self._forecasts_state: dict[str, Any] | None = None  # stored forecasts, restored by `bind`
        self._replay: list[Reading] = []  # recent readings a rebuilt forecasts is fed first (upgrades)

    @classmethod
    def fresh(
        cls, config: DetectorConfig, sensitivity: float, position: int = 0, policy: AlarmPolicy | None = None
    ) -> StreamState:
        """A stream that learns from its next reading on (`policy` carries an open alarm over a reset)."""
        return cls(Detector(config, sensitivity), policy, position)

    # ------------------------------------------------------------------ scoring
    def bind(self, serving: ServingModel | None) -> None:
        """Use `serving`'s forecasts (None: self-learning); rebuilt when the model version changed."""
        if serving is None:
            self.forecasts, self._forecasts_state, self.model, self.model_version = None, None, None, None
            return
        if self.forecasts is not None and (self.model, self.model_version) == (serving.name, serving.version):
            return
        if self._forecasts_state is not None and (self.model, self.model_version) == (
            serving.name,
            serving.version,
        ):
            self.forecasts = ModelForecasts.from_state(self._forecasts_state, serving.forecaster)
        else:
            self.forecasts = ModelForecasts(serving.forecaster)
            for timestamp, value in self._replay:
                if value is not None:
                    self.forecasts.observe(timestamp, value)
        self._forecasts_state, self._replay = None, []
        self.model, self.model_version = serving.name, serving.version

    def append(self, timestamp: datetime, value: float | None) -> tuple[ScoredPoint, list[AlarmEvent]]:
        """Score one reading, then feed the alarm policy when it was scored (call `bind` first)."""
        point = score_reading(self.detector, self.forecasts, timestamp, value)
        if point.index != self.position:
            point = replace(point, index=self.position)
        self.position += 1
        if point.score is None:
            return point, []
        assert point.value is not None and point.expected is not None
        assert point.lower is not None and point.upper is not None
        events = self.policy.step(
            to_state_iso(timestamp),
            point.is_anomaly,
            point.score,
            point.direction,
            point.value,
            point.expected,
            point.lower,
            point.upper,
        )
        return point, events

    def status(self) -> DetectorStatus:
        detector = self.detector
        scoring = detector.state_name == "scoring"
        last_refit = detector.last_refit_at
        return DetectorStatus(
            state=detector.state_name,
            points_until_ready=detector.points_until_ready,
            learning_points=detector.config.learning_points,
            refits=detector.refits,
            last_refit_at=None if last_refit is None else from_epoch_seconds(last_refit),
            weights_age_points=detector.since_refit if scoring else None,
        )

    # ------------------------------------------------------------------ state
    def to_state(self) -> dict[str, Any]:
        if self.forecasts is not None:
            forecasts: dict[str, Any] | None = self.forecasts.to_state()
        else:
            forecasts = self._forecasts_state
        return {
            "kind": STATE_KIND,
            "version": STATE_VERSION,
            "position": self.position,
            "detector": self.detector.to_state(),
            "forecasts": forecasts,
            "policy": self.policy.to_state(),
            "model": self.model,
            "model_version": self.model_version,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any], config: DetectorConfig, sensitivity: float) -> StreamState:
        """A stream from `to_state()` output, or from a version 1 state (upgraded; `config` and `sensitivity`
        set up its new detector). The sensitivity is always the given one (the stream's setting)."""
        if state.get("kind") == LEGACY_KIND:
            return cls._upgraded(state, config, sensitivity)
        if state.get("kind") != STATE_KIND or state.get("version") != STATE_VERSION:
            raise ValueError(
                f"not a {STATE_KIND} state of version {STATE_VERSION} (nor a {LEGACY_KIND} one); got kind "
                f"{state.get('kind')!r}, version {state.get('version')!r}"
            )
        detector = Detector.from_state(state["detector"])
        detector.set_sensitivity(sensitivity)
        stream = cls(
            detector,
            AlarmPolicy.from_state(state["policy"]),
            int(state["position"]),
            state["model"],
            state["model_version"],
        )
        stream._forecasts_state = state["forecasts"]
        return stream

    @classmethod
    def _upgraded(cls, state: dict[str, Any], config: DetectorConfig, sensitivity: float) -> StreamState:
        if state.get("format") != 1:
            raise ValueError(f"{LEGACY_KIND} state format {state.get('format')!r} is not known (expected 1)")
        readings: list[Reading] = [
            (from_state_iso(stamp), float(value))
            for stamp, value in zip(state["timestamps"], state["values"], strict=True)
        ]
        detector = Detector(config, sensitivity)
        for timestamp, value in readings:  # already scored by the old scorer: answers discarded
            detector.update(timestamp, value)
        stream = cls(detector, AlarmPolicy.from_state(state["policy"]), int(state["point_count"]))
        stream._replay = readings  # the model's forecasts (rebuilt at `bind`) see them too
        return stream
