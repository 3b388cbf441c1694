"""Normalisation of input windows: per-window (instance), subtract-last, or global z-scoring.

Per-window normalisation is the default: series drift between training and serving months, and an RNN fed
raw levels sits at naive level or worse (see the ETT notes). The choice is recorded in each manifest.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

NORMALISATIONS = ("instance", "last", "global")


@dataclass(frozen=True)
class Scaling:
    mode: str
    global_loc: float
    global_scale: float
    floor: float

    def __post_init__(self) -> None:
        if self.mode not in NORMALISATIONS:
            raise ValueError(
                f"normalisation={self.mode!r} is unknown; use one of {', '.join(NORMALISATIONS)}"
            )

    @classmethod
    def fit(cls, mode: str, training_values: torch.Tensor, floor_fraction: float = 1e-3) -> Scaling:
        loc = float(training_values.mean())
        scale = float(training_values.std(unbiased=False))
        return cls(
            mode=mode,
            global_loc=loc,
            global_scale=max(scale, 1e-12),
            floor=max(scale, 1e-12) * floor_fraction,
        )

    def stats(self, window: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Location and scale per window: [B, L] -> ([B, 1], [B, 1])."""
        if self.mode == "global":
            loc = torch.full_like(window[:, :1], self.global_loc)
            return loc, torch.full_like(loc, self.global_scale)
        scale = window.std(dim=1, unbiased=False, keepdim=True).clamp_min(self.floor)  # [B, L] -> [B, 1]
        loc = window[:, -1:] if self.mode == "last" else window.mean(dim=1, keepdim=True)  # [B, L] -> [B, 1]
        return loc, scale

    def to_dict(self) -> dict[str, float | str]:
        return asdict(self)
