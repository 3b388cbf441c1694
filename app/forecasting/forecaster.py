"""A forecaster = its specification (hyper-parameters, scaling, calendar) + the recurrent network.

Everything here is pure torch/numpy: windows in, quantile forecasts in the data's units out.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Annotated, Any

import numpy as np
import torch
from pydantic import Field

from app.forecasting.baselines import BASELINES, baseline_forecast
from app.forecasting.calendar import calendar_matrix
from app.forecasting.network import NetworkConfig, RecurrentForecastNetwork
from app.forecasting.quantiles import DEFAULT_QUANTILES, MEDIAN
from app.forecasting.scaling import Scaling
from app.forecasting.windows import sliding_windows


@dataclass(frozen=True)
class ForecasterSpec:
    window: int
    horizon: int
    frequency: str
    scaling: Scaling
    network: NetworkConfig
    patch_len: int = 1
    quantiles: tuple[float, ...] = DEFAULT_QUANTILES
    calendar_features: tuple[str, ...] = field(default_factory=tuple)
    # The naive forecast the network corrects (app/forecasting/baselines.py) and its season in steps. At their
    # defaults (the plain network) they are left out of manifests, so older versions keep their bytes.
    baseline: Annotated[str, Field(exclude_if=lambda kind: kind == "none")] = "none"
    season: Annotated[int, Field(exclude_if=lambda season: season == 1)] = 1

    def __post_init__(self) -> None:
        if self.baseline not in BASELINES:
            raise ValueError(f"baseline={self.baseline!r} is unknown; use one of {', '.join(BASELINES)}")
        if not 1 <= self.season <= self.window:
            raise ValueError(f"season={self.season} must lie in [1, window={self.window}]")
        if self.window % self.patch_len:
            raise ValueError(
                f"window={self.window} is not a multiple of patch_len={self.patch_len}; "
                "pick a patch length that divides the window"
            )
        if MEDIAN not in self.quantiles:
            raise ValueError(f"quantiles={self.quantiles} must include the median 0.5")

    @property
    def features_per_step(self) -> int:
        return 1 + 2 * len(self.calendar_features)

    @property
    def median_index(self) -> int:
        return self.quantiles.index(MEDIAN)

    def to_dict(self) -> dict[str, Any]:
        return {
            "window": self.window,
            "horizon": self.horizon,
            "frequency": self.frequency,
            "patch_len": self.patch_len,
            "quantiles": list(self.quantiles),
            "calendar_features": list(self.calendar_features),
            "scaling": self.scaling.to_dict(),
            "network": self.network.to_dict(),
            **({"baseline": self.baseline, "season": self.season} if self.baseline != "none" else {}),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ForecasterSpec:
        return cls(
            window=int(data["window"]),
            horizon=int(data["horizon"]),
            frequency=str(data["frequency"]),
            patch_len=int(data["patch_len"]),
            quantiles=tuple(float(q) for q in data["quantiles"]),
            calendar_features=tuple(str(name) for name in data["calendar_features"]),
            scaling=Scaling(**data["scaling"]),
            network=NetworkConfig(**data["network"]),
            baseline=str(data.get("baseline", "none")),
            season=int(data.get("season", 1)),
        )


class Forecaster:
    def __init__(self, spec: ForecasterSpec, network: RecurrentForecastNetwork) -> None:
        self.spec = spec
        self.network = network

    @classmethod
    def create(cls, spec: ForecasterSpec, seed: int | None = None) -> Forecaster:
        if seed is not None:
            torch.manual_seed(seed)
        expected_input = spec.patch_len * spec.features_per_step
        if spec.network.input_size != expected_input:
            spec = replace(spec, network=replace(spec.network, input_size=expected_input))
        network = RecurrentForecastNetwork(spec.network)
        if spec.baseline != "none":  # start exactly at the baseline: the correction is learnt from zero
            with torch.no_grad():
                network.head.weight.zero_()
                network.head.bias.zero_()
        return cls(spec, network)

    @property
    def uses_calendar(self) -> bool:
        return bool(self.spec.calendar_features)

    def calendar(self, timestamps: np.ndarray) -> np.ndarray:
        """Calendar encodings of the input timestamps: [..., L] -> [..., L, C]."""
        flat = calendar_matrix(timestamps.reshape(-1), list(self.spec.calendar_features))
        return flat.reshape(*timestamps.shape, flat.shape[-1])

    def tokens(self, scaled: torch.Tensor, calendar: torch.Tensor | None) -> torch.Tensor:
        """Per-step features grouped into patches: [B, L] (+ [B, L, C]) -> [B, L / P, P * (1 + C)]."""
        features = scaled.unsqueeze(-1)  # [B, L] -> [B, L, 1]
        if calendar is not None and calendar.shape[-1]:
            features = torch.cat([features, calendar], dim=-1)  # -> [B, L, 1 + C]
        batch, length, width = features.shape
        return features.reshape(batch, length // self.spec.patch_len, self.spec.patch_len * width)

    def scaled_forward(
        self, windows: torch.Tensor, calendar: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Forecast in scaled units with the scaling used: [B, L] -> ([B, H, Q], [B, 1], [B, 1]).

        With a baseline the network's output is a correction added to the baseline's scaled forecast, so
        `scaled * scale + loc` is baseline + correction * scale in data units.
        """
        loc, scale = self.spec.scaling.stats(windows)
        scaled = (windows - loc) / scale  # [B, L]
        output: torch.Tensor = self.network(self.tokens(scaled, calendar))  # [B, L / P, F] -> [B, H, Q]
        base = baseline_forecast(scaled, self.spec.baseline, self.spec.season, self.spec.horizon)  # [B, H]
        if base is not None:
            output = output + base.unsqueeze(-1)  # [B, H, Q] + [B, H, 1]
        return output, loc, scale

    @torch.inference_mode()
    def predict(self, windows: np.ndarray, calendar: np.ndarray | None = None) -> np.ndarray:
        """Quantile forecasts in data units: windows [B, L] (+ calendar [B, L, C]) -> [B, H, Q]."""
        self.network.eval()
        window_tensor = torch.from_numpy(np.array(windows, dtype=np.float32))
        calendar_tensor = None if calendar is None else torch.as_tensor(calendar, dtype=torch.float32)
        scaled, loc, scale = self.scaled_forward(window_tensor, calendar_tensor)
        return (scaled * scale.unsqueeze(-1) + loc.unsqueeze(-1)).numpy()  # [B, H, Q] * [B, 1, 1] + [B, 1, 1]

    def predict_rolling(
        self, values: np.ndarray, timestamps: np.ndarray | None = None, batch_size: int = 1024
    ) -> np.ndarray:
        """Forecasts from every origin of one series: values [N] -> [N - L + 1, H, Q].

        Row i forecasts the points from index L + i on, using values[i : i + L].
        """
        windows = sliding_windows(values, self.spec.window)  # [N] -> [N - L + 1, L]
        calendar = None
        if self.uses_calendar:
            if timestamps is None:
                raise ValueError("this model uses calendar features; timestamps are required")
            calendar = self.calendar(sliding_windows(timestamps, self.spec.window))  # -> [N - L + 1, L, C]
        chunks = [
            self.predict(
                windows[start : start + batch_size],
                None if calendar is None else calendar[start : start + batch_size],
            )
            for start in range(0, len(windows), batch_size)
        ]
        return np.concatenate(chunks, axis=0)
