"""The many-to-one recurrent network: a stacked GRU/LSTM/RNN whose last hidden state emits every
horizon step's quantiles at once (direct multi-horizon)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
from torch import nn

CELLS: dict[str, Callable[..., nn.RNNBase]] = {"gru": nn.GRU, "lstm": nn.LSTM, "rnn": nn.RNN}

HiddenState = torch.Tensor | tuple[torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class NetworkConfig:
    cell: str
    input_size: int
    hidden_size: int
    num_layers: int
    horizon: int
    num_quantiles: int
    dropout: float = 0.0

    def __post_init__(self) -> None:
        if self.cell not in CELLS:
            raise ValueError(f"cell={self.cell!r} is unknown; use one of {', '.join(CELLS)}")

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


class RecurrentForecastNetwork(nn.Module):
    quantile_offsets: torch.Tensor  # buffer [H, Q] added to the quantiles outside training

    def __init__(self, config: NetworkConfig) -> None:
        super().__init__()
        self.config = config
        inter_layer_dropout = config.dropout if config.num_layers > 1 else 0.0
        self.rnn = CELLS[config.cell](
            input_size=config.input_size,
            hidden_size=config.hidden_size,
            num_layers=config.num_layers,
            batch_first=True,
            dropout=inter_layer_dropout,
        )
        self.head = nn.Linear(config.hidden_size, config.horizon * config.num_quantiles)
        self.register_buffer("quantile_offsets", torch.zeros(config.horizon, config.num_quantiles))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Quantile forecasts from a whole window of tokens: [B, T, F] -> [B, H, Q]."""
        outputs, _ = self.rnn(tokens)  # [B, T, F] -> [B, T, hidden]
        return self.readout(outputs[:, -1])  # [B, hidden] -> [B, H, Q]

    def initial_state(self, batch_size: int) -> HiddenState:
        zeros = torch.zeros(self.config.num_layers, batch_size, self.config.hidden_size)
        return (zeros, zeros.clone()) if self.config.cell == "lstm" else zeros

    def readout(self, last_hidden: torch.Tensor) -> torch.Tensor:
        """Head on the last hidden state: [B, hidden] -> [B, H, Q], calibrated and sorted outside training."""
        raw: torch.Tensor = self.head(last_hidden)  # [B, hidden] -> [B, H * Q]
        quantiles = raw.view(-1, self.config.horizon, self.config.num_quantiles)  # -> [B, H, Q]
        if self.training:
            return quantiles
        return torch.sort(quantiles + self.quantile_offsets, dim=-1).values  # [B, H, Q] + [H, Q] -> [B, H, Q]
