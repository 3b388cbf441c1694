"""One token through a trained recurrent network's cells, in numpy float32: the per-reading step of a stream.

`ModelForecasts` advances a hidden state by one token per reading. Through the torch module that costs
~110 us for a GRU 64 x 2 (module call, weight checks, dispatch of ~20 small ops); the same cell equations on
numpy views of the module's own weights cost a fraction of that (~10 us per layer here), because every op is
one numpy call on a vector of a few hundred floats: matrix-vector products (single-threaded in OpenBLAS at these
sizes) and in-place element-wise ufuncs. Only the lead-1 median is read out (the head's first Q rows), not every
horizon's quantiles.

The equations are those of `torch.nn.GRU` / `LSTM` / `RNN` (tanh), in float32; the results agree with the torch
module to float32 rounding (not bitwise: the sums are ordered differently). They are deterministic, and the one
implementation every path uses (streams, restored streams and the detect endpoints all step through here), so
a given sequence of readings gives bitwise the same forecasts on all of them.

The weights are views (no copies) of the module's parameters, so a stepper costs nothing to build and follows
the module's weights if they ever change in place.
"""

from __future__ import annotations

import numpy as np
import torch

from app.forecasting.network import RecurrentForecastNetwork

Vector = np.ndarray  # [n] float32
LayerState = tuple[Vector, ...]  # (h,) for GRU / RNN, (h, c) for LSTM; each [hidden] float32


def _view(tensor: torch.Tensor) -> np.ndarray:
    """A float32 numpy view of a parameter or buffer (no copy, no autograd)."""
    return tensor.detach().numpy()


def _sigmoid_in_place(values: Vector) -> None:
    """values <- 1 / (1 + exp(-values)), with no temporaries."""
    np.negative(values, out=values)
    np.exp(values, out=values)
    values += 1
    np.reciprocal(values, out=values)


class RecurrentStepper:
    """The cell step and the lead-1 read-out of one `RecurrentForecastNetwork` (see the module docstring)."""

    def __init__(self, network: RecurrentForecastNetwork, median_index: int) -> None:
        config = network.config
        self.cell = config.cell
        self.layers = config.num_layers
        self.hidden = config.hidden_size
        rnn = network.rnn
        self._weights = [
            tuple(
                _view(getattr(rnn, f"{name}_l{layer}"))
                for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
            )
            for layer in range(self.layers)
        ]
        quantiles = config.num_quantiles
        self._head_weight = _view(network.head.weight)[
            :quantiles
        ]  # lead 1's rows of the [H * Q, hidden] head
        self._head_bias = _view(network.head.bias)[:quantiles]
        self._offsets = _view(network.quantile_offsets)[0]  # [Q]
        self._median = median_index

    # ------------------------------------------------------------------ state
    def flat(self, state: list[LayerState]) -> np.ndarray:
        """The torch layout flattened ([layers, 1, hidden] h, then c for an LSTM): what `unflat` reads."""
        parts = len(state[0])
        return np.concatenate([state[layer][part] for part in range(parts) for layer in range(self.layers)])

    def unflat(self, flat: np.ndarray) -> list[LayerState]:
        """Inverse of `flat`; ValueError when the size does not fit this network."""
        parts = 2 if self.cell == "lstm" else 1
        if flat.size != parts * self.layers * self.hidden:
            raise ValueError(f"a hidden state of {flat.size} values does not fit this network")
        arrays = flat.astype(np.float32).reshape(parts, self.layers, self.hidden)
        return [tuple(arrays[part, layer].copy() for part in range(parts)) for layer in range(self.layers)]

    # ------------------------------------------------------------------ step
    def initial(self) -> list[LayerState]:
        """The zero state (`RecurrentForecastNetwork.initial_state` for one series)."""
        parts = 2 if self.cell == "lstm" else 1
        return [tuple(np.zeros(self.hidden, np.float32) for _ in range(parts)) for _ in range(self.layers)]

    def step(self, token: Vector, state: list[LayerState]) -> tuple[np.float32, list[LayerState]]:
        """Advance the state by one token [F] and read out the lead-1 median correction (scaled units)."""
        last, advanced = self.run(token[None], state)
        return self.readout(last), advanced

    def run(self, tokens: np.ndarray, state: list[LayerState]) -> tuple[Vector, list[LayerState]]:
        """Advance the state by tokens [T, F], one token at a time: (last hidden output [hidden], new state).

        Token by token with matrix-vector products only, so a window run is bitwise the same as stepping its
        tokens one by one, and no BLAS matrix-matrix product runs (OpenBLAS would spread one over its own
        threads, costing far more CPU than it saves on a shared machine; numpy ignores the torch thread setting).
        """
        for token in tokens:
            layer_input = token
            advanced: list[LayerState] = []
            for layer in range(self.layers):
                current = self._advance(layer, layer_input, state[layer])
                advanced.append(current)
                layer_input = current[0]
            state = advanced
        return state[-1][0], state

    def _advance(self, layer: int, layer_input: Vector, current: LayerState) -> LayerState:
        """One cell of one layer: the layer's input [F or hidden] and state -> its new state."""
        weight_ih, weight_hh, bias_ih, bias_hh = self._weights[layer]
        gates_in = weight_ih @ layer_input + bias_ih  # [G]
        gates = weight_hh @ current[0] + bias_hh  # [G], a fresh array the cell works in
        size = self.hidden
        if self.cell == "gru":  # gates [r | z | n]: torch.nn.GRU's equations
            reset_update = gates[: 2 * size]
            reset_update += gates_in[: 2 * size]
            _sigmoid_in_place(reset_update)
            candidate = gates[2 * size :]
            candidate *= reset_update[:size]  # r * (W_hn h + b_hn)
            candidate += gates_in[2 * size :]
            np.tanh(candidate, out=candidate)
            hidden = current[0] - candidate  # (1 - z) * n + z * h = n + z * (h - n)
            hidden *= reset_update[size:]
            hidden += candidate
            return (hidden,)
        gates += gates_in
        if self.cell == "lstm":  # gates [i | f | g | o]: torch.nn.LSTM's equations
            _sigmoid_in_place(gates[: 2 * size])
            _sigmoid_in_place(gates[3 * size :])
            np.tanh(gates[2 * size : 3 * size], out=gates[2 * size : 3 * size])
            cell = gates[size : 2 * size] * current[1]
            cell += gates[:size] * gates[2 * size : 3 * size]
            return (gates[3 * size :] * np.tanh(cell), cell)
        np.tanh(gates, out=gates)  # a tanh RNN
        return (gates,)

    def readout(self, last_hidden: Vector) -> np.float32:
        """Lead-1 median of the head on a last hidden state [hidden] (calibrated and sorted like `readout`)."""
        quantiles = self._head_weight @ last_hidden + self._head_bias  # [Q], a fresh array
        quantiles += self._offsets
        quantiles.sort()
        return quantiles[self._median]  # type: ignore[no-any-return]
