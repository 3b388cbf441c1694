"""The training loop: pinball loss, gradient-norm clipping, early stopping that keeps the best epoch."""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import torch

from app.forecasting.forecaster import Forecaster
from app.forecasting.quantiles import pinball_loss
from app.training.config import TrainingConfig
from app.training.dataset import WindowDataset

EVAL_BATCH = 2048


class TrainingProgress(Protocol):
    def start(self, epochs: int, batches_per_epoch: int) -> None: ...
    def batch(self, epoch: int, loss: float) -> None: ...
    def epoch(self, record: EpochRecord) -> None: ...
    def finish(self) -> None: ...


class SilentProgress:
    def start(self, epochs: int, batches_per_epoch: int) -> None:
        pass

    def batch(self, epoch: int, loss: float) -> None:
        pass

    def epoch(self, record: EpochRecord) -> None:
        pass

    def finish(self) -> None:
        pass


@dataclass(frozen=True)
class EpochRecord:
    epoch: int
    train_loss: float
    val_loss: float
    seconds: float
    improved: bool


@dataclass
class TrainingHistory:
    epochs: list[EpochRecord] = field(default_factory=list)
    best_epoch: int = 0
    best_val_loss: float = float("inf")
    stopped_early: bool = False
    seconds: float = 0.0


def _tensors(
    dataset: WindowDataset, origins: np.ndarray
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    windows, calendar = dataset.inputs(origins)
    calendar_tensor = None if calendar is None else torch.from_numpy(calendar)
    return torch.from_numpy(windows), calendar_tensor, torch.from_numpy(dataset.targets(origins))


def batch_loss(forecaster: Forecaster, dataset: WindowDataset, origins: np.ndarray) -> torch.Tensor:
    windows, calendar, targets = _tensors(dataset, origins)
    predicted, loc, scale = forecaster.scaled_forward(windows, calendar)  # [B, L] -> [B, H, Q]
    scaled_targets = (targets - loc) / scale  # [B, H]
    levels = torch.tensor(forecaster.spec.quantiles, dtype=torch.float32)
    return pinball_loss(predicted, scaled_targets, levels)


@torch.no_grad()
def evaluation_loss(forecaster: Forecaster, dataset: WindowDataset, origins: np.ndarray) -> float:
    forecaster.network.train(False)
    total = 0.0
    for start in range(0, len(origins), EVAL_BATCH):
        chunk = origins[start : start + EVAL_BATCH]
        total += float(batch_loss(forecaster, dataset, chunk)) * len(chunk)
    return total / max(len(origins), 1)


def _train_epoch(
    forecaster: Forecaster,
    dataset: WindowDataset,
    batches: list[np.ndarray],
    optimiser: torch.optim.Optimizer,
    config: TrainingConfig,
    progress: TrainingProgress,
    epoch: int,
) -> float:
    forecaster.network.train(True)
    losses = []
    for origins in batches:
        optimiser.zero_grad(set_to_none=True)
        loss = batch_loss(forecaster, dataset, origins)
        loss.backward()  # type: ignore[no-untyped-call]  # torch ships Tensor.backward unannotated
        torch.nn.utils.clip_grad_norm_(forecaster.network.parameters(), config.clip_norm)
        optimiser.step()
        losses.append(loss.item())
        progress.batch(epoch, losses[-1])
    return float(np.mean(losses))


def _epoch_batches(origins: np.ndarray, config: TrainingConfig, rng: np.random.Generator) -> list[np.ndarray]:
    shuffled = rng.permutation(origins)
    batches = [shuffled[i : i + config.batch_size] for i in range(0, len(shuffled), config.batch_size)]
    return batches[: config.max_batches_per_epoch] if config.max_batches_per_epoch else batches


def fit(
    forecaster: Forecaster,
    dataset: WindowDataset,
    config: TrainingConfig,
    progress: TrainingProgress | None = None,
) -> TrainingHistory:
    """Train until `epochs` or until validation loss stalls for `patience` epochs; restore the best weights
    (best_epoch 0: the untrained network, i.e. exactly the naive baseline of a model that corrects one)."""
    progress = progress or SilentProgress()
    rng = np.random.default_rng(config.seed)
    torch.manual_seed(config.seed)
    train_origins, val_origins = dataset.origins("train"), dataset.origins("val")
    optimiser = torch.optim.AdamW(
        forecaster.network.parameters(), lr=config.lr, weight_decay=config.weight_decay
    )
    history, best_state, stale = TrainingHistory(), copy.deepcopy(forecaster.network.state_dict()), 0
    if forecaster.spec.baseline != "none":
        # Epoch 0 is the baseline itself (the head starts at zero): a run that never beats it on validation
        # keeps it, so a trained model is never worse than its naive baseline there.
        history.best_val_loss = evaluation_loss(forecaster, dataset, val_origins)
    batches_per_epoch = len(_epoch_batches(train_origins, config, rng))
    progress.start(config.epochs, batches_per_epoch)
    started = time.perf_counter()
    try:
        for epoch in range(1, config.epochs + 1):
            epoch_start = time.perf_counter()
            batches = _epoch_batches(train_origins, config, rng)
            train_loss = _train_epoch(forecaster, dataset, batches, optimiser, config, progress, epoch)
            val_loss = evaluation_loss(forecaster, dataset, val_origins)
            improved = val_loss < history.best_val_loss
            if improved:
                history.best_epoch, history.best_val_loss, stale = epoch, val_loss, 0
                best_state = copy.deepcopy(forecaster.network.state_dict())
            else:
                stale += 1
            record = EpochRecord(epoch, train_loss, val_loss, time.perf_counter() - epoch_start, improved)
            history.epochs.append(record)
            progress.epoch(record)
            if stale >= config.patience:
                history.stopped_early = True
                break
    finally:
        progress.finish()
    forecaster.network.load_state_dict(best_state)
    forecaster.network.train(False)
    history.seconds = time.perf_counter() - started
    return history
