"""`tswatch train`: options the user does not give are None, so `choose_config` picks them from the data;
the fixed ones show `TrainingConfig`'s value (one definition)."""

import dataclasses
import re

from typer.core import TyperGroup, TyperOption
from typer.main import get_command
from typer.testing import CliRunner

from app.cli.main import cli
from app.training.config import TrainingConfig
from app.training.data.parsing import DEFAULT_TIME_COL, DEFAULT_VALUE_COL

CONFIG_DEFAULTS = {field.name: field.default for field in dataclasses.fields(TrainingConfig)}
EXPECTED_CONFIG_OPTIONS = {
    "window", "horizon", "cell", "hidden", "layers", "dropout", "patch_len", "normalisation", "baseline",
    "calendar", "epochs", "batch_size", "lr", "patience", "seed",
}  # fmt: skip
FIXED_DEFAULTS = {"batch_size", "lr", "seed"}  # not chosen from the data: help shows TrainingConfig's value


def train_options() -> dict[str, TyperOption]:
    group = get_command(cli)
    assert isinstance(group, TyperGroup)
    command = group.commands["train"]
    return {param.name: param for param in command.params if isinstance(param, TyperOption)}


def test_every_config_option_defaults_to_not_given():
    options = train_options()
    config_options = {name: option for name, option in options.items() if name in CONFIG_DEFAULTS}
    assert set(config_options) == EXPECTED_CONFIG_OPTIONS
    for name, option in config_options.items():
        assert option.default is None, name


def test_column_options_default_to_the_data_defaults():
    options = train_options()
    assert options["time_col"].default == DEFAULT_TIME_COL
    assert options["value_col"].default == DEFAULT_VALUE_COL


def test_help_shows_the_effective_defaults():
    result = CliRunner().invoke(cli, ["train", "--help"], env={"COLUMNS": "220", "TERMINAL_WIDTH": "220"})
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    for name in sorted(FIXED_DEFAULTS):
        flag = "--" + name.replace("_", "-")
        shown = re.search(rf"{flag} [^\[]*\[default: ([^\]]+)\]", text)
        assert shown is not None, f"{flag} shows no default:\n{result.output}"
        assert shown.group(1).strip("()") == str(CONFIG_DEFAULTS[name]), flag
    assert f"[default: {DEFAULT_TIME_COL}]" in text
    for name in ("window", "horizon", "hidden", "patch_len", "epochs"):
        flag = "--" + name.replace("_", "-")
        assert re.search(rf"{flag} [^-]*default: from the", text), flag
