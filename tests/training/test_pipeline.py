"""End-to-end training: real fits on small synthetic series, evaluated, calibrated and registered."""

import numpy as np
import pandas as pd
import pytest
import torch

from app.errors import InvalidInputError
from app.forecasting.forecaster import Forecaster
from app.forecasting.windows import SplitBounds
from app.registry.factory import open_registry
from app.registry.manifest import VersionSummary
from app.settings import Settings
from app.training.config import TrainingConfig
from app.training.data.errors import DataValidationError
from app.training.data.prepared import prepare
from app.training.dataset import WindowDataset
from app.training.fitting import forecaster_spec
from app.training.pipeline import train_model
from app.training.trainer import EpochRecord, evaluation_loss, fit

pytestmark = pytest.mark.slow

FAST = TrainingConfig(window=24, horizon=6, hidden=16, layers=1, epochs=3, batch_size=64, seed=0)


def hourly_sine(points: int, seed: int = 0, level: float = 10.0, amplitude: float = 3.0, noise: float = 0.3):
    """Hourly series with a daily cycle plus Gaussian noise."""
    rng = np.random.default_rng(seed)
    hours = np.arange(points)
    values = level + amplitude * np.sin(2 * np.pi * hours / 24) + rng.normal(0, noise, points)
    return pd.DataFrame({"timestamp": pd.date_range("2024-01-01", periods=points, freq="h"), "value": values})


def long_frame(parts: dict[str, pd.DataFrame]) -> pd.DataFrame:
    return pd.concat(
        [frame.assign(series=series_id) for series_id, frame in parts.items()], ignore_index=True
    )


@pytest.fixture(autouse=True)
def one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def registry(tmp_path):
    registry = open_registry(Settings(models_dir=tmp_path / "models"))
    yield registry
    registry.database.dispose()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One real run: ~1500 hourly points, window 48, horizon 6, 10 epochs."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    registry = open_registry(Settings(models_dir=tmp_path_factory.mktemp("pipeline") / "models"))
    config = TrainingConfig(
        window=48, horizon=6, hidden=16, layers=1, epochs=10, batch_size=32, lr=5e-3, patience=3, seed=0
    )
    data = prepare(hourly_sine(1500, seed=3), min_length=config.window + config.horizon)
    try:
        result = train_model(data, "sine", registry, config, alias="production")
        yield registry, result
    finally:
        registry.database.dispose()
        torch.set_num_threads(previous)


def test_trained_model_beats_random_walk_and_seasonal_naive(trained):
    registry, result = trained
    manifest = registry.read_manifest(registry.resolve("sine"))
    assert manifest.metrics == result.manifest.metrics
    metrics = manifest.metrics.model_dump(mode="json")
    assert metrics["season"] == 24
    model_mae = metrics["model"]["mae"]
    baselines = metrics["baselines"]
    assert model_mae < baselines["seasonal_naive"]["mae"], metrics
    assert model_mae < baselines["random_walk"]["mae"], metrics
    assert metrics["model"]["mase_seasonal"] < 1.0
    assert result.version.summary == VersionSummary.of(result.manifest)
    assert result.version.summary.model_dump(mode="json")["metrics"] == metrics["model"]


def test_calibrated_80_percent_intervals_cover_about_80_percent(trained):
    _, result = trained
    intervals = result.manifest.metrics.model_dump(mode="json")["intervals"]
    assert 0.6 <= intervals["80.0"]["coverage"] <= 0.97, intervals
    assert intervals["80.0"]["mean_width"] < intervals["95.0"]["mean_width"]
    assert set(result.manifest.interval_calibration) == set(intervals)


def test_early_stopping_history_keeps_the_best_epoch(trained):
    registry, result = trained
    history = result.history
    val_losses = [record.val_loss for record in history.epochs]
    assert history.epochs[history.best_epoch - 1].epoch == history.best_epoch
    assert history.best_val_loss == min(val_losses) == val_losses[history.best_epoch - 1]
    assert history.epochs[history.best_epoch - 1].improved
    stored = registry.read_manifest(result.version).training
    assert stored.best_epoch == history.best_epoch
    assert stored.best_val_loss == history.best_val_loss
    assert [entry.val_loss for entry in stored.history] == val_losses


class Snapshots:
    """Progress that records the network's weights at the end of every epoch."""

    def __init__(self, forecaster: Forecaster) -> None:
        self.forecaster = forecaster
        self.states: dict[int, dict[str, torch.Tensor]] = {}

    def start(self, epochs: int, batches_per_epoch: int) -> None:
        pass

    def batch(self, epoch: int, loss: float) -> None:
        pass

    def epoch(self, record: EpochRecord) -> None:
        self.states[record.epoch] = {k: v.clone() for k, v in self.forecaster.network.state_dict().items()}

    def finish(self) -> None:
        pass


def test_fit_stops_early_and_restores_the_best_epochs_weights():
    """A high learning rate makes validation loss stall; fit must return the best epoch's weights, not the last."""
    config = TrainingConfig(
        window=24, horizon=6, hidden=16, layers=1, epochs=25, batch_size=32, lr=0.05, patience=2, seed=1
    )
    data = prepare(hourly_sine(900, seed=5), min_length=30)
    series = data.series[0]
    bounds = [SplitBounds.from_fractions(len(series.values), config.val_fraction, config.test_fraction)]
    dataset = WindowDataset.build([(series.id, series.values, series.timestamps)], bounds, 24, 6, [])
    forecaster = Forecaster.create(forecaster_spec(config, dataset, data.frequency, []), seed=config.seed)
    snapshots = Snapshots(forecaster)

    history = fit(forecaster, dataset, config, snapshots)

    assert history.stopped_early
    assert len(history.epochs) < config.epochs
    assert history.best_epoch == len(history.epochs) - config.patience
    final = forecaster.network.state_dict()
    best = snapshots.states[history.best_epoch]
    assert all(torch.equal(final[key], best[key]) for key in final)
    last = snapshots.states[len(history.epochs)]
    assert not all(torch.equal(final[key], last[key]) for key in final)
    assert evaluation_loss(forecaster, dataset, dataset.origins("val")) == pytest.approx(
        history.best_val_loss
    )


def test_same_seed_gives_identical_weights(tmp_path):
    data = prepare(hourly_sine(900, seed=1), min_length=30)
    states, shas = [], []
    for run, seed in enumerate((7, 7, 8)):
        registry = open_registry(Settings(models_dir=tmp_path / f"run{run}"))
        try:
            info = train_model(
                data, "det", registry, TrainingConfig(**{**FAST.to_dict(), "seed": seed})
            ).version
            states.append(registry.load(info).forecaster.network.state_dict())
            shas.append(info.weights_sha256)
        finally:
            registry.database.dispose()
    first, second, other = states
    assert first.keys() == second.keys()
    for key in first:
        assert torch.equal(first[key], second[key]), key
    assert shas[0] == shas[1]
    assert shas[2] != shas[0]
    assert not all(torch.equal(first[key], other[key]) for key in first)


class InterruptOnThirdBatch:
    def __init__(self) -> None:
        self.batches = 0
        self.started = self.finished = False

    def start(self, epochs: int, batches_per_epoch: int) -> None:
        self.started = True

    def batch(self, epoch: int, loss: float) -> None:
        self.batches += 1
        if self.batches == 3:
            raise KeyboardInterrupt

    def epoch(self, record: EpochRecord) -> None:
        pass

    def finish(self) -> None:
        self.finished = True


def test_keyboard_interrupt_during_training_propagates_and_registers_nothing(registry):
    data = prepare(hourly_sine(900), min_length=30)
    progress = InterruptOnThirdBatch()

    with pytest.raises(KeyboardInterrupt):
        train_model(data, "interrupted", registry, FAST, alias="production", progress=progress)

    assert progress.batches == 3
    assert progress.started and progress.finished  # the progress display was closed
    assert registry.list_models() == []
    assert not (registry.root / "interrupted").exists()
    assert [p.name for p in registry.root.iterdir() if p.is_dir()] == []


def test_long_format_global_model_stores_per_series_calibration(registry):
    frame = long_frame(
        {"north": hourly_sine(900, seed=1), "south": hourly_sine(900, seed=2, level=50.0, amplitude=10.0)}
    )
    data = prepare(frame, id_col="series", min_length=30)
    config = TrainingConfig(**{**FAST.to_dict(), "epochs": 2})

    result = train_model(data, "global", registry, config)

    manifest = registry.read_manifest(result.version)
    assert [s.id for s in manifest.data.series] == ["north", "south"]
    calibration = manifest.anomaly.calibration
    assert calibration.kind == "CalibrationSet"
    assert sorted(calibration.per_series) == ["north", "south"]
    assert calibration.per_series["north"] != calibration.per_series["south"]
    restored = manifest.calibration()
    assert restored.series_ids == ["north", "south"]
    assert set(manifest.data.last_values) == {"north", "south"}
    assert registry.load(result.version).forecaster.spec.window == 24


def test_series_shorter_than_window_plus_horizon_is_refused_by_name(registry):
    frame = long_frame({"plenty": hourly_sine(300), "stubby": hourly_sine(20)})
    with pytest.raises(
        DataValidationError, match=r'series "stubby" has 20 points .* window \+ horizon needs 30'
    ):
        prepare(frame, id_col="series", min_length=FAST.window + FAST.horizon)


def test_series_too_short_for_the_splits_is_refused_by_name(registry):
    frame = long_frame({"plenty": hourly_sine(300), "stubby": hourly_sine(36)})
    data = prepare(
        frame, id_col="series", min_length=FAST.window + FAST.horizon
    )  # long enough for one window

    with pytest.raises(
        DataValidationError, match=r"series 'stubby' has 36 points: too few for a train split"
    ):
        train_model(data, "short", registry, FAST)
    assert registry.list_models() == []


class NeverStarted(InterruptOnThirdBatch):
    def start(self, epochs: int, batches_per_epoch: int) -> None:
        raise AssertionError("training started although the name or alias is invalid")


@pytest.mark.parametrize(("name", "alias"), [("Bad Name", None), ("fine", "Not An Alias")])
def test_invalid_name_or_alias_is_refused_before_training(registry, name, alias):
    data = prepare(hourly_sine(300), min_length=30)
    with pytest.raises(InvalidInputError, match="is invalid"):
        train_model(data, name, registry, FAST, alias=alias, progress=NeverStarted())
    assert registry.list_models() == []
