"""The typed manifest: files written before it was typed (version 1) still load and serve; writes round-trip;
an invalid or foreign manifest is refused with a message naming the problem.

The fixtures in `data/manifest_v1/` were written by the untyped code (commit 05039c6) through `train_file`:
`single` (one hourly series with calendar inputs) and `fleet` (three series in long format, one of them with
filled gaps, so per-series calibrators and a fitted GPD tail are present).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import update

from app.registry.artifacts import (
    MANIFEST_FILE,
    WEIGHTS_FILE,
    ArtifactIntegrityError,
    manifest_bytes,
    read_manifest,
    read_weights,
)
from app.registry.factory import open_registry
from app.registry.manifest import MANIFEST_VERSION, Manifest, VersionSummary, parse_manifest, upgrade
from app.registry.store import Registry, VersionInfo
from app.settings import Settings
from app.storage.tables.registry import ModelRow, VersionRow

FIXTURES = Path(__file__).parent / "data" / "manifest_v1"
KINDS = ("single", "fleet")


def v1_raw(kind: str) -> dict:
    return json.loads((FIXTURES / kind / MANIFEST_FILE).read_bytes())


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def install_v1(registry: Registry, kind: str, name: str) -> VersionInfo:
    """Register the fixture's files, byte for byte, as version 1 of `name` (as an old server left them)."""
    target = registry.root / name / "1"
    shutil.copytree(FIXTURES / kind, target)
    with registry.database.session() as session:
        session.add(ModelRow(name=name))
        session.flush()
        session.add(
            VersionRow(
                model_name=name,
                version=1,
                path=f"{name}/1",
                weights_sha256=sha256_of(target / WEIGHTS_FILE),
                manifest_sha256=sha256_of(target / MANIFEST_FILE),
                summary="{}",
            )
        )
    return registry.get_version(name, 1)


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    registry = open_registry(Settings(models_dir=tmp_path / "models"))
    yield registry
    registry.database.dispose()


# ------------------------------------------------------------------------------ version 1 loads


@pytest.mark.parametrize("kind", KINDS)
def test_v1_fixture_validates_and_upgrades(kind: str) -> None:
    raw = v1_raw(kind)
    assert "manifest_version" not in raw  # what the untyped code wrote
    manifest = read_manifest(FIXTURES / kind, sha256_of(FIXTURES / kind / MANIFEST_FILE))

    assert manifest.manifest_version == MANIFEST_VERSION
    assert manifest.name == raw["name"]
    assert manifest.spec.window == raw["spec"]["window"]
    assert manifest.spec.network.hidden_size == raw["spec"]["network"]["hidden_size"]
    assert manifest.training.config.epochs == raw["training"]["config"]["epochs"] == 3
    assert [record.epoch for record in manifest.training.history] == [1, 2, 3]
    assert (
        manifest.metrics.baselines.seasonal_naive.mae == raw["metrics"]["baselines"]["seasonal_naive"]["mae"]
    )
    assert manifest.weights is not None and manifest.weights.sha256 == sha256_of(
        FIXTURES / kind / WEIGHTS_FILE
    )
    assert (
        manifest.report is not None
        and manifest.report.test_sample.series == raw["report"]["test_sample"]["series"]
    )


@pytest.mark.parametrize("kind", KINDS)
def test_v1_fixture_writes_back_byte_for_byte(kind: str) -> None:
    """Nothing is dropped or reshaped: the typed manifest writes the old file plus its version number."""
    manifest = parse_manifest(v1_raw(kind))
    written = json.loads(manifest_bytes(manifest))
    assert written == {**v1_raw(kind), "manifest_version": MANIFEST_VERSION}
    without_version = {key: value for key, value in written.items() if key != "manifest_version"}
    legacy_bytes = json.dumps(without_version, indent=2, sort_keys=True, allow_nan=False).encode()
    assert legacy_bytes == (FIXTURES / kind / MANIFEST_FILE).read_bytes()


def test_multi_series_fixture_keeps_per_series_calibration_and_gaps() -> None:
    manifest = parse_manifest(v1_raw("fleet"))
    calibration = manifest.calibration()
    assert calibration.series_ids == ["a", "b", "c"]
    assert manifest.anomaly.calibration.global_.tail is not None
    assert [gap.series_id for gap in manifest.data.gaps] == ["b"]
    assert manifest.data.gaps[0].first_gap == pd.Timestamp("2024-01-05 04:00:00")
    assert sorted(manifest.data.last_values) == ["a", "b", "c"]
    assert manifest.public().anomaly.calibrated_series == ["a", "b", "c"]


def test_version_summaries_written_by_older_code_parse(registry: Registry) -> None:
    """Rows hold `{}` (published without a summary) or the untyped code's metrics/baselines/frequency dict."""
    info = install_v1(registry, "single", "old-single")
    assert info.summary == VersionSummary()
    raw = v1_raw("single")
    untyped = {
        "metrics": raw["metrics"]["model"],
        "baselines": raw["metrics"]["baselines"],
        "frequency": raw["data"]["frequency"],
    }
    with registry.database.session() as session:
        session.execute(update(VersionRow).values(summary=json.dumps(untyped, allow_nan=False)))
    summary = registry.get_version("old-single", 1).summary
    assert summary == VersionSummary.of(parse_manifest(raw))
    assert summary.model_dump(mode="json") == untyped


@pytest.mark.parametrize("kind", KINDS)
def test_v1_fixture_loads_from_the_registry_and_forecasts(registry: Registry, kind: str) -> None:
    info = install_v1(registry, kind, f"old-{kind}")
    loaded = registry.load(info)

    assert loaded.manifest.version == 1 and loaded.manifest.manifest_version == MANIFEST_VERSION
    spec = loaded.forecaster.spec
    assert spec == loaded.manifest.spec
    values = np.asarray(loaded.manifest.data.last_values[next(iter(loaded.manifest.data.last_values))])
    end = np.datetime64(pd.Timestamp(next(iter(loaded.manifest.data.last_timestamps.values()))), "s")
    stamps = end - np.arange(spec.window)[::-1] * np.timedelta64(1, "h" if spec.frequency == "h" else "D")
    calendar = loaded.forecaster.calendar(stamps[None, :]) if loaded.forecaster.uses_calendar else None
    quantiles = loaded.forecaster.predict(values[None, :].astype(np.float32), calendar)
    assert quantiles.shape == (1, spec.horizon, len(spec.quantiles))
    assert np.all(np.isfinite(quantiles))
    assert np.all(np.diff(quantiles, axis=-1) >= -1e-4)  # quantiles stay ordered
    assert loaded.manifest.calibration().for_series(None).n_calibration > 0


@pytest.mark.slow
def test_v1_fixture_serves_over_http(registry: Registry, server_factory) -> None:
    """A real server answers forecasts with the old version, and shows its manifest as before."""
    install_v1(registry, "single", "old")
    raw = v1_raw("single")
    server = server_factory(registry.root)
    values = raw["data"]["last_values"]["value"]
    end = pd.Timestamp(raw["data"]["last_timestamps"]["value"])
    stamps = pd.date_range(end=end, periods=len(values), freq="h").strftime("%Y-%m-%dT%H:%M:%SZ").tolist()
    with server.client() as client:
        body = {"series": [{"id": "value", "values": values, "timestamps": stamps}], "horizon": 3}
        forecast = client.post("/v1/models/old/forecast", json=body)
        shown = client.get("/v1/models/old/versions/1")
    assert forecast.status_code == 200, forecast.text
    assert forecast.json()["model"]["version"] == 1
    assert shown.status_code == 200, shown.text
    expected = {key: value for key, value in raw.items() if key != "anomaly"}
    expected |= {"version": 1, "anomaly": {"calibrated_series": []}}
    assert shown.json()["manifest"] == expected  # the API's JSON is what it was before the manifest was typed


# ------------------------------------------------------------------------------ round trip


def test_manifest_round_trips_through_json() -> None:
    manifest = parse_manifest(v1_raw("fleet")).model_copy(update={"version": 7})
    again = Manifest.model_validate_json(manifest_bytes(manifest))
    assert again == manifest.model_copy(update={"version": None})  # the version number is never stored
    assert manifest_bytes(again) == manifest_bytes(manifest)


def test_published_manifest_reads_back_equal(registry: Registry) -> None:
    source = read_manifest(FIXTURES / "single")
    info = registry.publish("copy", read_weights(FIXTURES / "single", source), source)
    stored = registry.read_manifest(info)
    assert stored.version == 1 and stored.name == "copy"
    assert stored.model_copy(update={"version": None}) == source.model_copy(update={"name": "copy"})
    assert json.loads((info.path / MANIFEST_FILE).read_bytes())["manifest_version"] == MANIFEST_VERSION


# ------------------------------------------------------------------------------ refusals


def write_raw(directory: Path, raw: dict) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / MANIFEST_FILE).write_text(json.dumps(raw, indent=2, sort_keys=True))
    return directory


def test_unknown_key_is_refused_naming_it(tmp_path: Path) -> None:
    raw = v1_raw("single")
    raw["spec"]["network"]["hiden_size"] = 8  # a typo
    with pytest.raises(ArtifactIntegrityError, match=r"not a valid manifest: spec\.network\.hiden_size"):
        read_manifest(write_raw(tmp_path / "typo", raw))


def test_missing_and_mistyped_fields_are_refused(tmp_path: Path) -> None:
    raw = v1_raw("single")
    del raw["metrics"]["model"]
    raw["data"]["rows"] = "many"
    with pytest.raises(ArtifactIntegrityError) as caught:
        read_manifest(write_raw(tmp_path / "bad", raw))
    assert "metrics.model: Field required" in str(caught.value)
    assert "data.rows" in str(caught.value)
    assert caught.value.kind == "invalid manifest"


def test_inconsistent_spec_is_refused(tmp_path: Path) -> None:
    raw = v1_raw("single")
    raw["spec"]["patch_len"] = 5  # does not divide the window: the spec's own check runs
    with pytest.raises(ArtifactIntegrityError, match="not a multiple of patch_len"):
        read_manifest(write_raw(tmp_path / "patch", raw))


def test_newer_manifest_version_is_refused(tmp_path: Path) -> None:
    raw = {**v1_raw("single"), "manifest_version": MANIFEST_VERSION + 1}
    with pytest.raises(ArtifactIntegrityError, match="upgrade tswatch"):
        read_manifest(write_raw(tmp_path / "future", raw))
    with pytest.raises(ValueError, match="manifest_version"):
        upgrade({**v1_raw("single"), "manifest_version": "2"})


def test_registry_refuses_an_invalid_manifest_like_a_hash_mismatch(registry: Registry) -> None:
    """Even with a matching sha256 (written so by a buggy or foreign producer), an invalid manifest never loads."""
    raw = v1_raw("single")
    raw["training"]["history"][0]["loss"] = raw["training"]["history"][0].pop("train_loss")
    bad = write_raw(registry.root / "staging-bad", raw)
    shutil.copy(FIXTURES / "single" / WEIGHTS_FILE, bad / WEIGHTS_FILE)
    info = install_v1(registry, "single", "good")
    shutil.copy(bad / MANIFEST_FILE, info.path / MANIFEST_FILE)
    with registry.database.session() as session:
        session.execute(
            update(VersionRow)
            .where(VersionRow.model_name == "good")
            .values(manifest_sha256=sha256_of(info.path / MANIFEST_FILE))
        )
    with pytest.raises(ArtifactIntegrityError, match=r"training\.history\.0"):
        registry.load(registry.get_version("good", 1))


# ------------------------------------------------------------------------------ undefined metrics


def test_an_undefined_mase_is_null_with_its_note_and_round_trips(tmp_path: Path) -> None:
    """A series constant over its training rows has no MASE scale: null plus the reason, written and read back."""
    raw = v1_raw("single")
    note = "undefined: the training rows repeat exactly at lag 24 (constant or all zero), ..."
    for accuracy in (raw["metrics"]["model"], *raw["metrics"]["baselines"].values()):
        accuracy.update(mase_seasonal=None, notes={"mase_seasonal": note})
    manifest = parse_manifest(raw)
    assert manifest.metrics.model.mase_seasonal is None
    assert manifest.metrics.model.notes == {"mase_seasonal": note}
    assert VersionSummary.of(manifest).baselines is not None

    written = manifest_bytes(manifest)
    assert json.loads(written)["metrics"]["model"]["notes"] == {"mase_seasonal": note}
    assert read_manifest(write_raw(tmp_path / "null-mase", json.loads(written))) == manifest


def test_notes_are_not_written_when_empty() -> None:
    """Manifests with every metric defined keep their version-2 layout (no `notes` key anywhere)."""
    written = json.loads(manifest_bytes(parse_manifest(v1_raw("single"))))
    assert "notes" not in written["metrics"]["model"]


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_nan_or_infinity_in_a_manifest_is_refused_by_field(bad: float) -> None:
    raw = v1_raw("single")
    raw["metrics"]["model"]["mase_seasonal"] = bad
    with pytest.raises(ValueError, match=r"metrics\.model\.mase_seasonal"):
        parse_manifest(raw)


# ------------------------------------------------------------------------------ version 3: baselines, choices


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("stored_version", [1, 2])
def test_older_manifests_upgrade_to_the_plain_network_without_choices(kind: str, stored_version: int) -> None:
    raw = v1_raw(kind) if stored_version == 1 else {**v1_raw(kind), "manifest_version": 2}
    upgraded = upgrade(raw)
    assert upgraded["manifest_version"] == MANIFEST_VERSION == 3
    assert upgraded["spec"]["baseline"] == "none" and upgraded["spec"]["season"] == 1
    assert upgraded["training"]["choices"] == []
    assert "baseline" not in raw["spec"]  # the caller's dict is not changed
    manifest = parse_manifest(raw)
    assert manifest.spec.baseline == "none" and manifest.training.config.baseline == "none"
    assert manifest.training.choices == []


def test_choices_and_baseline_round_trip() -> None:
    manifest = parse_manifest(v1_raw("single"))
    spec = manifest.spec.__class__.from_dict({**manifest.spec.to_dict(), "baseline": "last", "season": 1})
    training = manifest.training.model_copy(
        update={"choices": [{"field": "window", "value": 48, "reason": "2 seasons", "source": "data"}]}
    )
    changed = manifest.model_copy(update={"spec": spec, "training": training})
    again = parse_manifest(json.loads(manifest_bytes(changed)))
    assert again.spec.baseline == "last"
    assert [(c.field, c.value, c.source) for c in again.training.choices] == [("window", 48, "data")]
