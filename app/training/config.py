"""Hyper-parameters of a training run, with the defaults the CLI shows."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Annotated

from pydantic import Field

from app.forecasting.baselines import BASELINES
from app.forecasting.quantiles import DEFAULT_QUANTILES

ChoiceValue = bool | int | float | str | None


@dataclass(frozen=True)
class Choice:
    """How one configuration field got its value: a rule on the data, the user, or a search."""

    field: str
    value: ChoiceValue
    reason: str
    source: str = "data"  # "data" | "user" | "search" | "validation" (decided after training)


@dataclass(frozen=True)
class TrainingConfig:
    window: int = 96
    horizon: int = 24
    cell: str = "gru"
    hidden: int = 64
    layers: int = 2
    dropout: float = 0.1
    patch_len: int = 1
    normalisation: str = "instance"
    # "none" | "last" | "seasonal": the naive forecast the network corrects, and the seasonal one's season (None:
    # detected). Left out of manifests at their defaults, so versions trained before them keep their bytes.
    baseline: Annotated[str, Field(exclude_if=lambda kind: kind == "none")] = "none"
    season: Annotated[int | None, Field(exclude_if=lambda season: season is None)] = None
    calendar: bool | None = None
    epochs: int = 30
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.0
    patience: int = 5
    clip_norm: float = 1.0
    seed: int = 0
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    max_batches_per_epoch: int | None = None
    quantiles: tuple[float, ...] = field(default=DEFAULT_QUANTILES)

    def __post_init__(self) -> None:
        checks = {
            "window": self.window >= 2,
            "horizon": self.horizon >= 1,
            "hidden": self.hidden >= 1,
            "layers": self.layers >= 1,
            "epochs": self.epochs >= 1,
            "batch_size": self.batch_size >= 1,
            "lr": self.lr > 0,
            "patience": self.patience >= 1,
            "patch_len": self.patch_len >= 1 and self.window % self.patch_len == 0,
            "dropout": 0.0 <= self.dropout < 1.0,
            "val_fraction": 0.0 < self.val_fraction < 0.5,
            "test_fraction": 0.0 < self.test_fraction < 0.5,
            "baseline": self.baseline in BASELINES,
            "season": self.season is None or self.season >= 1,
        }
        for name, valid in checks.items():
            if not valid:
                raise ValueError(
                    f"{name}={getattr(self, name)!r} is out of range; see `tswatch train --help`"
                )

    def to_dict(self) -> dict[str, object]:
        return asdict(self)
