"""The model registry: publish/load round trips, numbering, resolution, aliases, validation, manifests."""

import hashlib
import json
import re
import threading
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import torch

import app
from app.errors import InvalidInputError, NotFoundError
from app.forecasting.forecaster import Forecaster, ForecasterSpec
from app.forecasting.network import NetworkConfig
from app.forecasting.quantiles import DEFAULT_QUANTILES
from app.forecasting.scaling import Scaling
from app.registry.artifacts import MANIFEST_FORMAT, WEIGHTS_FILE
from app.registry.factory import open_registry
from app.registry.manifest import Manifest, VersionSummary, parse_manifest
from app.registry.store import (
    AliasNotFoundError,
    ModelNotFoundError,
    Registry,
    VersionNotFoundError,
)
from app.settings import Settings
from app.storage.database import Database

WINDOW, HORIZON = 24, 6
V1_MANIFEST = Path(__file__).parent / "data" / "manifest_v1" / "single" / "manifest.json"


def manifest_for(spec: ForecasterSpec, source: str = "<data>") -> Manifest:
    """A complete manifest (a real one from the fixture) describing `spec`."""
    manifest = parse_manifest(json.loads(V1_MANIFEST.read_bytes()))
    data = manifest.data.model_copy(update={"source": source})
    return manifest.model_copy(update={"spec": spec, "data": data, "weights": None})


def make_forecaster(seed: int = 0, calendar: tuple[str, ...] = ("hour_of_day",)) -> Forecaster:
    """A forecaster with random weights and non-zero calibration offsets (so the buffer is exercised too)."""
    spec = ForecasterSpec(
        window=WINDOW,
        horizon=HORIZON,
        frequency="h",
        scaling=Scaling(mode="instance", global_loc=10.0, global_scale=2.0, floor=1e-3),
        network=NetworkConfig(
            cell="gru",
            input_size=1 + 2 * len(calendar),
            hidden_size=16,
            num_layers=1,
            horizon=HORIZON,
            num_quantiles=len(DEFAULT_QUANTILES),
        ),
        calendar_features=calendar,
    )
    forecaster = Forecaster.create(spec, seed=seed)
    with torch.no_grad():
        forecaster.network.quantile_offsets.normal_(0.0, 0.1, generator=torch.Generator().manual_seed(seed))
    forecaster.network.eval()
    return forecaster


def publish(registry: Registry, name: str = "demo", seed: int = 0, alias: str | None = None):
    forecaster = make_forecaster(seed)
    manifest = manifest_for(forecaster.spec, source=f"seed {seed}")
    return registry.publish(name, forecaster.network.state_dict(), manifest, alias=alias)


@pytest.fixture
def registry(tmp_path):
    registry = open_registry(Settings(models_dir=tmp_path / "registry"))
    yield registry
    registry.database.dispose()


def second_registry(registry: Registry) -> Registry:
    """Another Registry over the same database and folder, with its own engine and connections."""
    database = Database(registry.database.url)
    return Registry(database, registry.root)


# ----------------------------------------------------------------------------------- round trip


def test_published_forecaster_loads_and_predicts_identically(registry):
    original = make_forecaster(seed=3)
    manifest = manifest_for(original.spec)
    info = registry.publish("demo", original.network.state_dict(), manifest)

    loaded = registry.load(info)

    assert (loaded.name, loaded.version) == ("demo", 1)
    assert loaded.manifest.name == "demo"
    assert loaded.manifest.version == 1
    assert loaded.forecaster.spec == original.spec
    original_state = original.network.state_dict()
    loaded_state = loaded.forecaster.network.state_dict()
    assert original_state.keys() == loaded_state.keys()
    for key, tensor in original_state.items():
        assert torch.equal(tensor, loaded_state[key]), key

    rng = np.random.default_rng(0)
    windows = (10 + rng.normal(0, 2, size=(32, WINDOW))).astype(np.float32)
    stamps = np.datetime64("2024-03-01T00:00") + np.arange(32 * WINDOW).reshape(32, WINDOW).astype(
        "timedelta64[h]"
    )
    calendar = original.calendar(stamps)
    expected = original.predict(windows, calendar)
    actual = loaded.forecaster.predict(windows, calendar)
    assert expected.shape == (32, HORIZON, len(DEFAULT_QUANTILES))
    np.testing.assert_array_equal(actual, expected)
    assert not loaded.forecaster.network.training


def test_versions_are_numbered_one_two_three_with_their_own_folders(registry):
    infos = [publish(registry, seed=seed) for seed in range(3)]

    assert [info.version for info in infos] == [1, 2, 3]
    assert [info.path for info in infos] == [registry.root / "demo" / str(v) for v in (1, 2, 3)]
    assert [v.version for v in registry.versions("demo")] == [1, 2, 3]
    assert [v.summary for v in registry.versions("demo")] == [
        VersionSummary.of(registry.read_manifest(info)) for info in infos
    ]
    assert infos[0].summary.metrics is not None and infos[0].summary.frequency == "h"
    assert len({info.weights_sha256 for info in infos}) == 3
    for info in infos:
        assert (info.path / WEIGHTS_FILE).is_file()
        assert not any(child.name.startswith(".staging-") for child in info.path.parent.iterdir())
    (model,) = registry.list_models()
    assert (model.name, model.versions, model.latest_version, model.aliases) == ("demo", [1, 2, 3], 3, {})
    # a second model is numbered independently
    assert publish(registry, name="other").version == 1


def test_resolve_explicit_version_alias_and_default(registry):
    for seed in range(3):
        publish(registry, seed=seed)

    assert registry.resolve("demo").version == 3  # no production alias: latest
    registry.set_alias("demo", "production", 1)
    assert registry.resolve("demo").version == 1  # production alias wins over latest
    registry.set_alias("demo", "staging", 2)
    assert registry.resolve("demo", alias="staging").version == 2
    assert registry.resolve("demo", alias="production").version == 1
    assert registry.resolve("demo", version=3).version == 3
    assert registry.resolve("demo", version=3, alias="staging").version == 3  # explicit number first

    info = publish(registry, seed=9, alias="production")  # publishing with an alias moves it
    assert info.version == 4
    assert registry.resolve("demo").version == 4
    assert registry.get_model("demo").aliases == {"production": 4, "staging": 2}


def test_unknown_model_version_and_alias_raise_helpful_not_found_errors(registry):
    publish(registry)
    registry.set_alias("demo", "staging", 1)

    with pytest.raises(ModelNotFoundError, match=r"model 'nope' is not registered") as caught:
        registry.resolve("nope")
    assert isinstance(caught.value, NotFoundError)
    assert caught.value.status == 404
    assert caught.value.fields == {"name": "nope"}
    for call in (
        lambda: registry.resolve("nope", version=1),
        lambda: registry.resolve("nope", alias="staging"),
        lambda: registry.versions("nope"),
        lambda: registry.set_alias("nope", "staging", 1),
        lambda: registry.delete_alias("nope", "staging"),
    ):
        with pytest.raises(ModelNotFoundError, match="'nope'"):
            call()

    with pytest.raises(VersionNotFoundError, match=r"model 'demo' has no version 7") as caught:
        registry.resolve("demo", version=7)
    assert caught.value.fields == {"name": "demo", "version": 7}
    assert isinstance(caught.value, NotFoundError)
    with pytest.raises(VersionNotFoundError, match="no version 2"):
        registry.set_alias("demo", "production", 2)
    assert registry.get_model("demo").aliases == {"staging": 1}

    with pytest.raises(
        AliasNotFoundError, match=r"no alias 'canary'; known aliases: \['staging'\]"
    ) as caught:
        registry.resolve("demo", alias="canary")
    assert isinstance(caught.value, NotFoundError)
    with pytest.raises(AliasNotFoundError, match="no alias 'canary'"):
        registry.delete_alias("demo", "canary")


def test_alias_moves_are_visible_to_a_second_registry_on_the_same_database(registry):
    publish(registry, seed=0)
    publish(registry, seed=1)
    registry.set_alias("demo", "production", 1)
    other = second_registry(registry)
    try:
        assert other.resolve("demo").version == 1
        registry.set_alias("demo", "production", 2)
        assert other.resolve("demo").version == 2
        assert other.get_model("demo").aliases == {"production": 2}
        other.set_alias("demo", "production", 1)
        assert registry.resolve("demo", alias="production").version == 1
        # the second instance also loads what the first published
        assert other.load(other.resolve("demo")).version == 1
    finally:
        other.database.dispose()


def test_alias_move_is_atomic_for_concurrent_readers(registry):
    """While one registry flips the alias back and forth, readers always see a whole, valid version."""
    publish(registry, seed=0)
    publish(registry, seed=1)
    registry.set_alias("demo", "production", 1)
    readers = [second_registry(registry) for _ in range(2)]
    seen: list[int] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def read(reader: Registry) -> None:
        try:
            while not stop.is_set():
                seen.append(reader.resolve("demo").version)
                seen.append(reader.get_model("demo").aliases["production"])
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=read, args=(reader,)) for reader in readers]
    for thread in threads:
        thread.start()
    try:
        for flip in range(60):
            registry.set_alias("demo", "production", 2 if flip % 2 == 0 else 1)
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
        for reader in readers:
            reader.database.dispose()
    assert not errors, errors
    assert seen and set(seen) <= {1, 2}
    assert registry.resolve("demo").version == 1


def test_delete_alias(registry):
    publish(registry, seed=0)
    publish(registry, seed=1)
    registry.set_alias("demo", "production", 1)
    registry.set_alias("demo", "staging", 2)

    registry.delete_alias("demo", "staging")
    assert registry.get_model("demo").aliases == {"production": 1}
    with pytest.raises(AliasNotFoundError):
        registry.resolve("demo", alias="staging")
    with pytest.raises(AliasNotFoundError):
        registry.delete_alias("demo", "staging")

    registry.delete_alias("demo", "production")
    assert registry.get_model("demo").aliases == {}
    assert registry.resolve("demo").version == 2  # back to latest
    assert [v.version for v in registry.versions("demo")] == [1, 2]  # versions stay


@pytest.mark.parametrize(
    "name",
    ["", "Demo", "-demo", ".demo", "_demo", "de mo", "de/mo", "../demo", "demo\n", "d" * 65, "démo"],
)
def test_invalid_model_names_are_refused_before_anything_is_written(registry, name):
    with pytest.raises(InvalidInputError, match=r"model name .* is invalid"):
        publish(registry, name=name)
    assert registry.list_models() == []
    assert [p.name for p in registry.root.iterdir() if p.is_dir()] == []


@pytest.mark.parametrize(
    "alias", ["", "Production", "1st", "-x", "pro duction", "prod/x", "prod\n", "a" * 65]
)
def test_invalid_aliases_are_refused(registry, alias):
    publish(registry)
    with pytest.raises(InvalidInputError, match=r"alias .* is invalid"):
        registry.set_alias("demo", alias, 1)
    with pytest.raises(InvalidInputError, match=r"alias .* is invalid"):
        publish(registry, alias=alias)
    assert registry.get_model("demo").aliases == {}
    assert [v.version for v in registry.versions("demo")] == [1]


def test_longest_valid_name_and_alias_are_accepted(registry):
    name, alias = "m" + "0._-" * 15 + "abc", "a" * 64
    assert len(name) == 64
    publish(registry, name=name, alias=alias)
    assert registry.resolve(name, alias=alias).version == 1


# ------------------------------------------------------------------------------------- manifest


def test_manifest_records_everything_needed_to_rebuild_and_audit(tiny_models_dir):
    registry = open_registry(Settings(models_dir=tiny_models_dir))
    try:
        info = registry.resolve("tiny", version=1)
        manifest = registry.read_manifest(info).model_dump(mode="json")
        other = registry.read_manifest(registry.resolve("tiny", version=2)).model_dump(mode="json")
    finally:
        registry.database.dispose()

    assert manifest["format"] == MANIFEST_FORMAT
    assert (manifest["name"], manifest["version"]) == ("tiny", 1)
    spec = manifest["spec"]
    assert spec["network"] == {
        "cell": "gru",
        "input_size": 5,  # value + sin/cos of hour of day and day of week
        "hidden_size": 16,
        "num_layers": 1,
        "horizon": 6,
        "num_quantiles": len(DEFAULT_QUANTILES),
        "dropout": 0.1,
    }
    assert spec["scaling"]["mode"] == "instance"
    assert {"global_loc", "global_scale", "floor"} <= spec["scaling"].keys()
    assert 8 < spec["scaling"]["global_loc"] < 12  # the synthetic series oscillates around 10
    assert (spec["window"], spec["horizon"], spec["frequency"]) == (24, 6, "h")
    assert spec["quantiles"] == list(DEFAULT_QUANTILES)
    assert spec["calendar_features"] == ["hour_of_day", "day_of_week"]

    metrics = manifest["metrics"]
    assert {"mae", "rmse", "mase_seasonal", "mase_random_walk"} <= metrics["model"].keys()
    assert set(metrics["baselines"]) == {"seasonal_naive", "random_walk"}
    assert metrics["season"] == 24 and metrics["test_windows"] > 0
    assert "80.0" in metrics["intervals"]

    assert re.fullmatch(r"[0-9a-f]{64}", manifest["data"]["fingerprint"])
    assert manifest["data"]["fingerprint"] != other["data"]["fingerprint"]  # seeds 0 and 1: other data
    assert manifest["data"]["rows"] == 900
    assert manifest["data"]["frequency"] == "h"
    assert manifest["code_version"] == app.__version__
    created = datetime.fromisoformat(manifest["created_at"].removesuffix("Z"))
    assert abs((datetime.now(UTC).replace(tzinfo=None) - created).total_seconds()) < 24 * 3600
    assert manifest["training"]["config"]["window"] == 24

    weights = (info.path / WEIGHTS_FILE).read_bytes()
    assert manifest["weights"] == {"file": WEIGHTS_FILE, "sha256": hashlib.sha256(weights).hexdigest()}
    assert info.weights_sha256 == manifest["weights"]["sha256"]
    assert info.manifest_sha256 == hashlib.sha256((info.path / "manifest.json").read_bytes()).hexdigest()
