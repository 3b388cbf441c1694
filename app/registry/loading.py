"""Rebuild a forecaster from a verified artifact: `Network(**config)` + strict weight loading."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from app.forecasting.forecaster import Forecaster, ForecasterSpec
from app.forecasting.network import RecurrentForecastNetwork
from app.registry.artifacts import ArtifactIntegrityError


@dataclass(frozen=True)
class LoadedModel:
    name: str
    version: int
    manifest: dict[str, Any]
    forecaster: Forecaster


def build_forecaster(manifest: dict[str, Any], tensors: dict[str, torch.Tensor]) -> Forecaster:
    try:
        spec = ForecasterSpec.from_dict(manifest["spec"])
        network = RecurrentForecastNetwork(spec.network)
        network.load_state_dict(tensors, strict=True)
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        raise ArtifactIntegrityError(
            f"artifact does not rebuild into its declared network: {error}"
        ) from error
    network.eval()
    return Forecaster(spec, network)
