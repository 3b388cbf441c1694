"""Rebuild a forecaster from a verified artifact: `Network(**config)` + strict weight loading."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from app.forecasting.forecaster import Forecaster, ForecasterSpec
from app.forecasting.network import RecurrentForecastNetwork
from app.registry.artifacts import ArtifactIntegrityError
from app.registry.manifest import Manifest


@dataclass(frozen=True)
class LoadedModel:
    name: str
    version: int
    manifest: Manifest
    forecaster: Forecaster


def build_forecaster(spec: ForecasterSpec, tensors: dict[str, torch.Tensor]) -> Forecaster:
    """The network `spec` declares, with `tensors` as its weights (they must fit it exactly)."""
    try:
        network = RecurrentForecastNetwork(spec.network)
        network.load_state_dict(tensors, strict=True)
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        raise ArtifactIntegrityError(
            f"artifact does not rebuild into its declared network: {error}",
            kind="weights do not fit the declared network",
        ) from error
    network.eval()
    return Forecaster(spec, network)
