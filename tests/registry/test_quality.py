"""Never silently worse than naive, in the registry: the rule on test MAEs, the record it leaves (`loses_to`),
and the production alias refusing a losing version unless forced, on `publish` and on `set_alias`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select, update

from app.registry.artifacts import MANIFEST_FILE, read_weights
from app.registry.factory import open_registry
from app.registry.manifest import Accuracy, Baselines, Manifest, VersionSummary, parse_manifest
from app.registry.quality import (
    GUARDED_ALIASES,
    FlaggedVersionError,
    baseline_losses,
    check_alias_target,
    losing_baselines,
)
from app.registry.store import DEFAULT_ALIAS, Registry
from app.settings import Settings
from app.storage.tables.registry import VersionRow

FIXTURE = Path(__file__).parent / "data" / "manifest_v1" / "single"


def accuracy(mae: float) -> Accuracy:
    return Accuracy(mae=mae, rmse=mae * 1.2, mase_seasonal=None, mase_random_walk=None)


def baselines(seasonal: float, random_walk: float) -> Baselines:
    return Baselines(seasonal_naive=accuracy(seasonal), random_walk=accuracy(random_walk))


def old_manifest() -> Manifest:
    """The version-1 fixture: trained before the check, so it records no `loses_to` (its model does lose)."""
    return parse_manifest(json.loads((FIXTURE / MANIFEST_FILE).read_bytes()))


def with_model_mae(manifest: Manifest, mae: float) -> Manifest:
    """The manifest as training would now write it for a model of test MAE `mae`."""
    metrics = manifest.metrics
    model = accuracy(mae)
    changed = metrics.model_copy(
        update={"model": model, "loses_to": losing_baselines(model, metrics.baselines)}
    )
    return manifest.model_copy(update={"metrics": changed, "weights": None})


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    registry = open_registry(Settings(models_dir=tmp_path / "models"))
    yield registry
    registry.database.dispose()


def publish(registry: Registry, manifest: Manifest, alias: str | None = None, force: bool = False) -> int:
    tensors = read_weights(FIXTURE, old_manifest())
    return registry.publish("demo", tensors, manifest, alias=alias, force=force).version


# ----------------------------------------------------------------------------------------------- the rule


def test_a_model_loses_to_each_baseline_with_a_lower_test_mae() -> None:
    assert losing_baselines(accuracy(1.0), baselines(2.0, 3.0)) == []
    assert losing_baselines(accuracy(2.5), baselines(2.0, 3.0)) == ["seasonal_naive"]
    assert losing_baselines(accuracy(2.5), baselines(3.0, 2.0)) == ["random_walk"]
    assert losing_baselines(accuracy(5.0), baselines(2.0, 3.0)) == ["seasonal_naive", "random_walk"]


def test_forecasting_exactly_the_baseline_is_a_tie_not_a_loss() -> None:
    """Float rounding between the model's float32 output and the float64 baseline is no loss; a tie is not."""
    assert losing_baselines(accuracy(2.0), baselines(2.0, 2.0)) == []
    assert losing_baselines(accuracy(2.0 * (1 + 1e-9)), baselines(2.0, 2.0)) == []
    assert losing_baselines(accuracy(2.0 * (1 + 1e-4)), baselines(2.0, 5.0)) == ["seasonal_naive"]


def test_the_guard_refuses_only_guarded_aliases_and_yields_to_force() -> None:
    assert GUARDED_ALIASES == {DEFAULT_ALIAS} == {"production"}
    summary = VersionSummary(
        metrics=accuracy(5.0), baselines=baselines(2.0, 3.0), loses_to=["seasonal_naive"]
    )
    assert [loss.to_dict() for loss in baseline_losses(summary)] == [
        {"baseline": "seasonal_naive", "model_mae": 5.0, "baseline_mae": 2.0}
    ]
    with pytest.raises(FlaggedVersionError) as caught:
        check_alias_target("demo", 3, "production", summary)
    error = caught.value
    assert error.status == 409 and error.slug == "version-loses-to-baseline"
    assert "version 3 of model 'demo' loses to seasonal naive (test MAE 5 against 2)" in error.detail
    assert "--force" in error.detail and '"force": true' in error.detail
    assert error.fields["loses_to"] == [{"baseline": "seasonal_naive", "model_mae": 5.0, "baseline_mae": 2.0}]
    check_alias_target("demo", 3, "production", summary, force=True)
    check_alias_target("demo", 3, "staging", summary)


def test_a_version_without_a_record_is_neither_flagged_nor_guarded() -> None:
    """Summaries written before the check (`loses_to` absent) and versions published without metrics."""
    unchecked = VersionSummary(metrics=accuracy(5.0), baselines=baselines(2.0, 3.0))
    assert unchecked.loses_to is None and baseline_losses(unchecked) == []
    check_alias_target("demo", 1, "production", unchecked)
    check_alias_target("demo", 1, "production", VersionSummary(loses_to=["seasonal_naive"]))


# ------------------------------------------------------------------------------------------- old manifests


def test_manifests_and_summaries_without_the_field_still_load(registry: Registry) -> None:
    manifest = old_manifest()
    assert manifest.metrics.loses_to is None
    assert "loses_to" not in manifest.to_json_dict()["metrics"]  # nothing added to old bytes
    assert VersionSummary.of(manifest).loses_to is None
    assert VersionSummary.model_validate_json('{"frequency": "h"}').loses_to is None

    version = publish(registry, manifest, alias="production")  # not guarded: no record
    assert registry.get_model("demo").aliases == {"production": version}
    assert registry.get_version("demo", version).summary.loses_to is None


def test_the_record_travels_into_the_manifest_and_the_registry_row(registry: Registry) -> None:
    losing = with_model_mae(old_manifest(), 100.0)
    assert losing.metrics.loses_to == ["seasonal_naive", "random_walk"]
    version = publish(registry, losing)
    info = registry.get_version("demo", version)
    assert info.summary.loses_to == ["seasonal_naive", "random_walk"]
    assert registry.read_manifest(info).metrics.loses_to == ["seasonal_naive", "random_walk"]
    with registry.database.session() as session:
        stored = session.scalar(select(VersionRow.summary).where(VersionRow.version == version))
    assert json.loads(stored or "{}")["loses_to"] == ["seasonal_naive", "random_walk"]


# ------------------------------------------------------------------------------------------ registry guard


def test_publishing_a_losing_version_under_production_needs_force(registry: Registry) -> None:
    losing = with_model_mae(old_manifest(), 100.0)
    with pytest.raises(FlaggedVersionError, match="the new version of 'demo' loses to seasonal naive"):
        publish(registry, losing, alias="production")
    assert registry.list_models() == []  # refused before anything was written

    assert publish(registry, losing, alias="staging") == 1  # other aliases are not guarded
    assert publish(registry, losing, alias="production", force=True) == 2
    assert registry.get_model("demo").aliases == {"staging": 1, "production": 2}


def test_pointing_production_at_a_losing_version_needs_force(registry: Registry) -> None:
    good = publish(registry, with_model_mae(old_manifest(), 0.01), alias="production")
    losing = publish(registry, with_model_mae(old_manifest(), 100.0))
    with pytest.raises(FlaggedVersionError, match=f"version {losing} of model 'demo' loses to"):
        registry.set_alias("demo", "production", losing)
    assert registry.get_model("demo").aliases == {"production": good}

    registry.set_alias("demo", "canary", losing)
    registry.set_alias("demo", "production", losing, force=True)
    assert registry.get_model("demo").aliases == {"production": losing, "canary": losing}
    registry.set_alias("demo", "production", good)  # a version that wins needs no force


def test_a_row_summary_edited_to_drop_the_record_is_not_guarded(registry: Registry) -> None:
    """Rows of versions registered before the check hold the metrics but no `loses_to`."""
    losing = publish(registry, with_model_mae(old_manifest(), 100.0))
    summary = VersionSummary.of(with_model_mae(old_manifest(), 100.0)).model_dump(
        mode="json", exclude={"loses_to"}
    )
    with registry.database.session() as session:
        session.execute(update(VersionRow).values(summary=json.dumps(summary)))
    registry.set_alias("demo", "production", losing)
    assert registry.get_model("demo").aliases == {"production": losing}
