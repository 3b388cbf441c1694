"""The manifest of a model version (`manifest.json` beside `model.safetensors`), typed and versioned.

A manifest is validated whenever a version is read: one that does not validate is refused like a sha256
mismatch (`ArtifactIntegrityError`). It is written with the same JSON layout as before it was typed (sorted
keys, 2-space indent), so the sha256 recorded in the registry keeps covering exactly the bytes on disk.

Versions: files written before the manifest was typed carry no `manifest_version` and are version 1.
`upgrade` lifts any older layout to `MANIFEST_VERSION`, one explicit step per version, before validation;
the file on disk is never rewritten (its sha256 stays valid).

The forecaster spec, the training config and the epoch records are the domain dataclasses themselves
(pydantic validates them field by field and runs their checks), so they have one definition.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Final, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PlainSerializer

from app.anomaly import CalibrationSet
from app.forecasting.forecaster import ForecasterSpec
from app.timestamps import to_aware_utc, to_iso_z
from app.training.config import Choice, ChoiceValue, TrainingConfig
from app.training.data.gaps import GapReport
from app.training.trainer import EpochRecord

MANIFEST_FORMAT: Final = "tswatch-model/1"
MANIFEST_VERSION: Final = 3

RawManifest = dict[str, Any]


UtcStamp = Annotated[datetime, AfterValidator(to_aware_utc), PlainSerializer(to_iso_z, return_type=str)]
"""A UTC instant, written as naive ISO 8601 with a `Z` (as `created_at` always was)."""


class ManifestPart(BaseModel):
    """Unknown keys are refused, so a typo in a producer or a foreign file fails loudly; so are NaN and
    infinities, which JSON cannot carry (an undefined number is null, with the reason beside it)."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, serialize_by_alias=True, validate_by_name=True, allow_inf_nan=False
    )


class Runtime(ManifestPart):
    python: str
    torch: str


class SearchTrial(ManifestPart):
    """One configuration the search (`tswatch train --search N`) fitted, scored on the validation split."""

    number: int = Field(description="0 is the data-driven default configuration.")
    changes: dict[str, ChoiceValue] = Field(description="Fields that differ from the default configuration.")
    config: TrainingConfig
    validation_mae: float = Field(description="MAE of the median forecast over every validation window.")
    best_val_loss: float
    best_epoch: int
    seconds: float
    chosen: bool


class TrainingRun(ManifestPart):
    config: TrainingConfig
    choices: list[Choice] = Field(
        default_factory=list,
        exclude_if=lambda choices: not choices,  # absent, as in older files, when none were recorded
        description="How each configuration field was chosen (data rule, user, search).",
    )
    best_epoch: int
    best_val_loss: float
    stopped_early: bool
    seconds: float
    history: list[EpochRecord]
    search: list[SearchTrial] = Field(
        default_factory=list,
        exclude_if=lambda trials: not trials,  # absent, as in older files, without a search
        description="The trials of `--search N` (empty when there was no search).",
    )


class SeriesExtent(ManifestPart):
    id: str
    length: int
    start: str = Field(description="First timestamp, as numpy prints datetime64[ns].")
    end: str


class DataDescription(ManifestPart):
    source: str
    fingerprint: str
    frequency: str
    rows: int
    series: list[SeriesExtent]
    gaps: list[GapReport] = Field(description="Series whose gaps were filled or edge rows dropped.")
    last_values: dict[str, list[float]] = Field(description="The last `window` values of (up to 16) series.")
    last_timestamps: dict[str, str] = Field(description="The last timestamp of every series.")


class Accuracy(ManifestPart):
    """Test errors of one forecaster. A MASE is null when its scale (the naive forecast's in-sample MAE) is 0
    for every series, as on a series constant or all zero over its training rows; `notes` says why, and also
    when a MASE covers only some series. `notes` is written only when it says something, so manifests
    without one keep their version-2 bytes."""

    mae: float
    rmse: float
    mase_seasonal: float | None
    mase_random_walk: float | None
    notes: dict[str, str] = Field(
        default_factory=dict,
        exclude_if=lambda notes: not notes,
        description="Metric -> why it is null or covers only some series.",
    )


class Baselines(ManifestPart):
    seasonal_naive: Accuracy
    random_walk: Accuracy


class IntervalScore(ManifestPart):
    coverage: float
    mean_width: float


class SeriesAccuracy(ManifestPart):
    """Test accuracy of one series of a global (multi-series) model next to its naive baselines."""

    id: str
    test_windows: int
    model: Accuracy
    baselines: Baselines


class EvaluationMetrics(ManifestPart):
    test_windows: int
    season: int
    model: Accuracy
    baselines: Baselines
    intervals: dict[str, IntervalScore] = Field(
        description="Interval level ('80.0') -> test coverage, width."
    )
    loses_to: list[str] | None = Field(
        default=None,
        exclude_if=lambda names: names is None,
        description="Baselines with a lower test MAE than the model (app.registry.quality): the version is "
        "flagged and the `production` alias refuses it unless forced. Absent in versions trained before the check.",
    )

    per_series: list[SeriesAccuracy] | None = Field(
        default=None,
        exclude_if=lambda series: series is None,
        description="Per-series test accuracy of a model trained on several series (pooled metrics mix their "
        "scales). Absent for single-series models and in versions trained before it.",
    )

    def by_forecaster(self) -> dict[str, Accuracy]:
        """The model's accuracy, then each baseline's, keyed by forecaster name (`model`, `seasonal_naive`...)."""
        return {
            "model": self.model,
            "seasonal_naive": self.baselines.seasonal_naive,
            "random_walk": self.baselines.random_walk,
        }


class TailState(ManifestPart):
    threshold: float
    fraction: float
    shape: float
    scale: float


class ConformalState(ManifestPart):
    """`ConformalCalibrator.to_state()`."""

    kind: Literal["ConformalCalibrator"] = "ConformalCalibrator"
    tail_quantile: float
    min_tail_points: int
    max_points: int
    sample: list[float]
    tail: TailState | None


class CalibrationState(ManifestPart):
    """`CalibrationSet.to_state()`: a global calibrator and one per series that had enough points."""

    kind: Literal["CalibrationSet"] = "CalibrationSet"
    global_: ConformalState = Field(alias="global")
    per_series: dict[str, ConformalState]

    @classmethod
    def of(cls, calibration: CalibrationSet) -> CalibrationState:
        return cls.model_validate(calibration.to_state())

    def restore(self) -> CalibrationSet:
        return CalibrationSet.from_state(self.model_dump(mode="json"))


class AnomalyState(ManifestPart):
    calibration: CalibrationState


class ResidualSummary(ManifestPart):
    """One-step validation residuals (actual - median) in data units."""

    count: int
    mean: float
    std: float
    q01: float
    q05: float
    q50: float
    q95: float
    q99: float


class ForecastSample(ManifestPart):
    """Lead-1 test forecasts of the first series with the calibrated 80%/95% bands."""

    series: str
    timestamps: list[str]
    actual: list[float]
    median: list[float]
    lower80: list[float]
    upper80: list[float]
    lower95: list[float]
    upper95: list[float]


class ResidualHistogram(ManifestPart):
    unit: str
    edges: list[float]
    counts: list[int]
    thresholds: dict[str, float | None] = Field(
        description=(
            "Sensitivity -> |residual| the training-time calibration would flag (null: too few residuals to "
            "resolve that false-alarm rate). Recorded only: detection calibrates its flags on the series it "
            "scores and does not use these; nothing draws them."
        )
    )
    calibration_points: int


class TrainingReport(ManifestPart):
    test_sample: ForecastSample
    residuals: ResidualHistogram


class WeightsRef(ManifestPart):
    file: str
    sha256: str


class _ManifestBody(ManifestPart):
    """Every field a manifest shows; the calibration state differs between the full and the public view."""

    format: Literal["tswatch-model/1"] = MANIFEST_FORMAT
    name: str
    version: int | None = Field(default=None, description="Set when read from the registry, never stored.")
    created_at: UtcStamp
    code_version: str
    runtime: Runtime
    spec: ForecasterSpec
    training: TrainingRun
    data: DataDescription
    metrics: EvaluationMetrics
    season: int
    interval_calibration: dict[str, list[float]] = Field(description="Level -> widening per horizon step.")
    residuals: ResidualSummary
    report: TrainingReport | None = Field(default=None, description="Absent in versions trained before it.")
    weights: WeightsRef | None = Field(
        default=None, description="Set by the registry when it writes the file."
    )


class AnomalySummary(ManifestPart):
    calibrated_series: list[str]


class PublicManifest(_ManifestBody):
    """The manifest as the API shows it: calibration samples (bulky) summarised by the series they cover."""

    anomaly: AnomalySummary


class Manifest(_ManifestBody):
    manifest_version: Literal[3] = MANIFEST_VERSION
    anomaly: AnomalyState

    def to_json_dict(self) -> RawManifest:
        """What `manifest.json` holds: everything but the registry-assigned version number."""
        return self.model_dump(mode="json", exclude={"version"})

    def public(self) -> PublicManifest:
        fields = self.model_dump(exclude={"anomaly", "manifest_version"})
        summary = AnomalySummary(calibrated_series=sorted(self.anomaly.calibration.per_series))
        return PublicManifest.model_validate({**fields, "anomaly": summary})

    def calibration(self) -> CalibrationSet:
        return self.anomaly.calibration.restore()


class VersionSummary(ManifestPart):
    """The part of a manifest the registry keeps in the version's database row, so that listing a model's
    versions with their test metrics reads no files. Empty (`{}`) for versions published without one."""

    metrics: Accuracy | None = None
    baselines: Baselines | None = None
    frequency: str | None = None
    loses_to: list[str] | None = Field(
        default=None, exclude_if=lambda names: names is None, description="As in the manifest's metrics."
    )

    @classmethod
    def of(cls, manifest: Manifest) -> VersionSummary:
        return cls(
            metrics=manifest.metrics.model,
            baselines=manifest.metrics.baselines,
            frequency=manifest.data.frequency,
            loses_to=manifest.metrics.loses_to,
        )


def _v1_to_v2(raw: RawManifest) -> RawManifest:
    """Version 1 (untyped, no `manifest_version`) has version 2's layout; only the number is added."""
    return {**raw, "manifest_version": 2}


_V3_DEFAULTS: Final[dict[str, dict[str, Any]]] = {
    "spec": {"baseline": "none", "season": 1},
    "training": {"choices": [], "search": []},
    "training.config": {"baseline": "none", "season": None},
}
"""Fields version 3 added, by dotted section, with the value that reproduces version 2's behaviour."""


def _section(raw: RawManifest, dotted: str) -> dict[str, Any]:
    section: dict[str, Any] = raw
    for key in dotted.split("."):
        section = section[key]
    return section


def _v2_to_v3(raw: RawManifest) -> RawManifest:
    """Version 3 adds the forecaster's baseline (none: the plain network), the config's baseline and season,
    and the recorded configuration choices (none: chosen by hand or before choices were recorded)."""
    upgraded = json.loads(json.dumps(raw))  # deep copy; the caller's dict stays as read
    for part, defaults in _V3_DEFAULTS.items():
        section = _section(upgraded, part)
        for key, value in defaults.items():
            section.setdefault(key, value)
    return {**upgraded, "manifest_version": 3}


UPGRADES: dict[int, Callable[[RawManifest], RawManifest]] = {1: _v1_to_v2, 2: _v2_to_v3}


def manifest_version_of(raw: RawManifest) -> int:
    version = raw.get("manifest_version", 1)
    if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= MANIFEST_VERSION:
        raise ValueError(
            f"manifest_version {version!r} is not one this tswatch reads (1..{MANIFEST_VERSION}); "
            "upgrade tswatch to load it"
        )
    return version


def upgrade(raw: RawManifest) -> RawManifest:
    """Lift a manifest of any older version to `MANIFEST_VERSION`, one step at a time."""
    version = manifest_version_of(raw)
    while version < MANIFEST_VERSION:
        raw = UPGRADES[version](raw)
        version = manifest_version_of(raw)
    return raw


def parse_manifest(raw: RawManifest) -> Manifest:
    """Upgrade and validate; raises ValueError (incl. pydantic's ValidationError) on anything wrong."""
    return Manifest.model_validate(upgrade(raw))
