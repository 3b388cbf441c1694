"""The demo models trained on first start: AAPL daily closes and NYC taxi demand (bundled data)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from app.registry.store import DEFAULT_ALIAS, Registry
from app.training.config import TrainingConfig
from app.training.pipeline import TrainingResult, train_file
from app.training.trainer import TrainingProgress

DATA_DIR = Path(__file__).resolve().parent / "data"


@dataclass(frozen=True)
class DemoModel:
    name: str
    file: str
    time_col: str
    value_col: str
    config: TrainingConfig

    @property
    def path(self) -> Path:
        return DATA_DIR / self.file


DEMO_MODELS = (
    DemoModel(
        name="stocks-aapl",
        file="stocks_aapl.csv",
        time_col="date",
        value_col="close",
        config=TrainingConfig(window=60, horizon=5, hidden=32, layers=1, epochs=20, normalisation="last"),
    ),
    DemoModel(
        name="nyc-taxi",
        file="nyc_taxi.csv",
        time_col="timestamp",
        value_col="value",
        config=TrainingConfig(window=48, horizon=48, hidden=64, layers=1, epochs=30, batch_size=256, lr=2e-3),
    ),
)


def train_demo_models(
    registry: Registry, progress_for: Callable[[str], TrainingProgress | None] = lambda name: None
) -> list[TrainingResult]:
    """Train every demo model the registry does not hold yet and point `production` at it."""
    present = {model.name for model in registry.list_models()}
    results = []
    for demo in DEMO_MODELS:
        if demo.name in present:
            continue
        results.append(
            train_file(
                demo.path,
                demo.name,
                registry,
                demo.config,
                time_col=demo.time_col,
                value_col=demo.value_col,
                alias=DEFAULT_ALIAS,
                progress=progress_for(demo.name),
            )
        )
    return results
