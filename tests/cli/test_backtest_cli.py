"""`tswatch backtest` end to end: a registered model through the real console entry point, a configuration and
the error messages in process (each subprocess spends seconds importing torch)."""

import json
from concurrent.futures import ThreadPoolExecutor

import pytest
from typer.testing import CliRunner

from app.cli.main import cli
from tests.conftest import synthetic_frame

pytestmark = pytest.mark.slow

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
CONFIG_ARGS = ("--window", "24", "--horizon", "6", "--hidden", "8", "--epochs", "1", "--batch-size", "64")


def flat(text: str) -> str:
    return " ".join(text.split())


def ok(result):
    assert result.returncode == 0, (
        f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    )
    return result


def refused(result, *fragments):
    assert result.exit_code == 2, (
        f"exit {result.exit_code}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    )
    message = flat(result.stderr)
    for fragment in fragments:
        assert fragment in message, message
    return message


def run_parallel(run_cli, models_dir, *commands):
    """Independent CLI invocations two at a time (each spends seconds importing torch)."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        return list(pool.map(lambda args: run_cli(models_dir, *args), commands))


@pytest.fixture
def in_process(models_dir, monkeypatch):
    """`tswatch` in this process, on the test's copy of the tiny registry."""
    monkeypatch.setenv("TSWATCH_MODELS_DIR", str(models_dir))
    monkeypatch.delenv("TSWATCH_DATABASE_URL", raising=False)
    return lambda *args: CliRunner().invoke(cli, list(args))


@pytest.fixture
def csv_path(tmp_path):
    """The series the tiny registry's model was trained on (hourly, daily cycle, 900 points)."""
    path = tmp_path / "load.csv"
    synthetic_frame().to_csv(path, index=False)
    return path


def test_backtest_of_a_registered_model(run_cli, models_dir, csv_path, tmp_path):
    png = tmp_path / "plots" / "bt.png"
    as_json, table = run_parallel(
        run_cli,
        models_dir,
        ("backtest", str(csv_path), "--model", "tiny:1", "--origins", "5", "--json", "--plot", str(png)),
        ("backtest", str(csv_path), "--model", "tiny@production", "--origins", "3", "--stride", "12"),
    )
    report = json.loads(ok(as_json).stdout)
    assert (report["subject"], report["mode"], report["fits"], report["refit_every"]) == (
        "tiny v1",
        "model",
        0,
        None,
    )
    assert (report["horizon"], report["origins"], report["stride"], report["season"]) == (6, 5, 6, 24)
    scores = report["scores"]
    assert scores["windows"] == 5 and len(scores["per_step"]) == 6 and len(report["origin_times"]) == 5
    assert [row["label"] for row in scores["per_step"]] == ["1", "2", "3", "4", "5", "6"]
    assert scores["overall"]["label"] == "1-6"
    for row in (*scores["per_step"], scores["overall"]):
        assert set(row["coverage"]) == {"80", "95"}
        for name in ("model", "seasonal_naive", "random_walk"):
            assert set(row[name]) == {"mae", "rmse", "mase"} and row[name]["mae"] >= 0.0
    sample = report["sample"]
    assert len(sample["median"]) == len(sample["actual"]) == len(sample["timestamps"]) == 6
    assert set(sample["bands"]) == {"80", "95"} and len(sample["history"]) > 0
    assert report["plot"] == str(png) and png.read_bytes()[:8] == PNG_MAGIC

    out = flat(ok(table).stdout)
    for text in ("Backtest of tiny v1: 3 origins 12 apart, horizon 6", "seasonal naive", "random walk"):
        assert text in out, out
    for text in ("MAE", "RMSE", "MASE", "80% cov.", "95% cov.", " all "):
        assert text in out, out
    default_png = csv_path.with_name("load.backtest.png")
    assert f"backtest plot written to {default_png}" in out and default_png.read_bytes()[:8] == PNG_MAGIC


def test_backtest_of_a_configuration_refits_every_k_origins(in_process, tmp_path):
    path = tmp_path / "short.csv"
    synthetic_frame(points=400).to_csv(path, index=False)
    png = tmp_path / "config.png"
    args = ("backtest", str(path), *CONFIG_ARGS, "--origins", "4", "--refit-every", "2", "--plot", str(png))
    as_json, table = in_process(*args, "--json"), in_process(*args)
    assert as_json.exit_code == 0, as_json.output
    report = json.loads(as_json.stdout)
    assert (report["subject"], report["mode"], report["fits"], report["refit_every"]) == (
        "configuration",
        "config",
        2,
        2,
    )
    assert (
        report["config"]["window"] == 24
        and report["config"]["hidden"] == 8
        and report["config"]["epochs"] == 1
    )
    given = {choice["field"] for choice in report["choices"] if choice["source"] == "user"}
    assert {"window", "horizon", "hidden", "epochs"} <= given
    assert report["scores"]["windows"] == 4 and len(report["scores"]["per_step"]) == 6
    assert table.exit_code == 0, table.output
    out = table.stdout
    assert "backtest fit 1/2" in out and "backtest fit 2/2" in out  # progress of each fit (plain: a pipe)
    assert "2 fit(s) of the configuration: window 24, horizon 6" in flat(out)
    assert png.read_bytes()[:8] == PNG_MAGIC


def test_backtest_errors_say_what_would_fit(in_process, csv_path, tmp_path):
    def model_run(*args):
        return in_process("backtest", str(csv_path), "--model", "tiny", *args)

    refused(
        model_run("--horizon", "12"), "--horizon 12 is beyond tiny v1's horizon of 6; use --horizon 6 or less"
    )
    refused(
        model_run("--origins", "200"),
        "series 'value' has 900 points: 200 origins 6 apart with horizon 6",
        "the model's window of 24",
        "try --origins 146 or --stride 4",
    )
    refused(
        model_run("--epochs", "3", "--refit-every", "2"),
        "--epochs, --refit-every: training options apply to a configuration backtest, not to --model",
    )
    refused(model_run("--model", "tiny:x"), "the version after ':' must be a number")
    refused(in_process("backtest", str(csv_path), "--model", "nope"), "nope")
    short = tmp_path / "short.csv"
    synthetic_frame(points=100).to_csv(short, index=False)
    refused(
        in_process("backtest", str(short), *CONFIG_ARGS, "--origins", "10"),
        "series 'value' has 100 points: 10 origins 6 apart with horizon 6",
        "a fit with window 24 needs a train, validation and test split",
        "try --origins",
    )
