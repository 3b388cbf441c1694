import pytest
import torch

from app.forecasting.network import NetworkConfig, RecurrentForecastNetwork


def make_network(cell: str, layers: int = 2, dropout: float = 0.0) -> RecurrentForecastNetwork:
    torch.manual_seed(0)
    config = NetworkConfig(
        cell=cell,
        input_size=3,
        hidden_size=16,
        num_layers=layers,
        horizon=5,
        num_quantiles=4,
        dropout=dropout,
    )
    return RecurrentForecastNetwork(config).eval()


@pytest.mark.parametrize("cell", ["gru", "lstm", "rnn"])
def test_forward_shape_is_batch_horizon_quantiles(cell):
    network = make_network(cell)
    assert network(torch.randn(7, 12, 3)).shape == (7, 5, 4)


def test_outputs_are_sorted_quantiles_in_eval_mode():
    network = make_network("gru")
    output = network(torch.randn(32, 10, 3))
    assert torch.all(output[..., 1:] >= output[..., :-1])


def test_same_seed_gives_identical_weights_and_outputs():
    tokens = torch.randn(2, 8, 3)
    first, second = make_network("lstm"), make_network("lstm")
    torch.testing.assert_close(first(tokens), second(tokens), rtol=0, atol=0)


def test_dropout_applies_between_layers_only_when_stacked():
    assert make_network("gru", layers=2, dropout=0.3).rnn.dropout == 0.3
    assert make_network("gru", layers=1, dropout=0.3).rnn.dropout == 0.0


def test_unknown_cell_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="gru, lstm, rnn"):
        NetworkConfig(cell="tcn", input_size=1, hidden_size=4, num_layers=1, horizon=1, num_quantiles=1)
