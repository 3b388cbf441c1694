"""The production alias over HTTP against a real server: a version that loses to a naive baseline is refused
(409 problem+json naming the baseline and both MAEs, and how to force) unless the body says `"force": true`;
other aliases are not guarded; the model and version answers show `loses_to`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from app.registry.factory import open_registry
from app.registry.manifest import Accuracy
from app.registry.quality import losing_baselines
from app.settings import Settings

PROBLEM = "application/problem+json"


def publish_copy(settings: Settings, model_mae: float) -> tuple[int, float]:
    """A new version of `tiny` (v1's network) whose recorded test MAE is `model_mae`; returns it and the seasonal
    naive MAE. Its `loses_to` is what training would record: the rule's answer for those numbers."""
    registry = open_registry(settings)
    try:
        loaded = registry.load(registry.get_version("tiny", 1))
        metrics = loaded.manifest.metrics
        model = Accuracy.model_validate({**metrics.model.model_dump(), "mae": model_mae})
        changed = metrics.model_copy(
            update={"model": model, "loses_to": losing_baselines(model, metrics.baselines)}
        )
        manifest = loaded.manifest.model_copy(update={"version": None, "weights": None, "metrics": changed})
        info = registry.publish("tiny", loaded.forecaster.network.state_dict(), manifest)
        return info.version, metrics.baselines.seasonal_naive.mae
    finally:
        registry.database.dispose()


def test_production_refuses_a_version_worse_than_naive_unless_forced(
    models_dir: Path, make_settings: Callable[..., Settings], server_factory: Callable[..., Any]
) -> None:
    settings = make_settings(models_dir=models_dir)
    naive_mae = publish_copy(settings, 0.0)[1]
    losing, _ = publish_copy(settings, 10 * naive_mae + 100.0)  # v4; v3 (MAE 0) beats both baselines
    server = server_factory(models_dir)
    with server.client() as client:
        refused = client.put("/v1/models/tiny/aliases/production", json={"version": losing})
        assert refused.status_code == 409, refused.text
        assert refused.headers["content-type"].startswith(PROBLEM)
        problem = refused.json()
        assert problem["type"] == "urn:tswatch:problem:version-loses-to-baseline"
        detail = problem["detail"]
        assert f"version {losing} of model 'tiny' loses to seasonal naive (test MAE" in detail
        assert f"against {naive_mae:.4g})" in detail and "random walk" in detail
        assert '"force": true' in detail and "--force" in detail
        assert problem["alias"] == "production" and problem["version"] == losing
        assert [loss["baseline"] for loss in problem["loses_to"]] == ["seasonal_naive", "random_walk"]
        assert problem["loses_to"][0]["baseline_mae"] == naive_mae
        assert client.get("/v1/models/tiny").json()["aliases"]["production"] == 1  # not moved

        # Other aliases are not guarded; a version at least as good as both baselines needs no force.
        staged = client.put("/v1/models/tiny/aliases/staging", json={"version": losing})
        assert staged.status_code == 200, staged.text
        assert client.put("/v1/models/tiny/aliases/production", json={"version": 3}).status_code == 200

        forced = client.put("/v1/models/tiny/aliases/production", json={"version": losing, "force": True})
        assert forced.status_code == 200, forced.text
        assert forced.json() == {"name": "tiny", "alias": "production", "version": losing}

        detail_answer = client.get("/v1/models/tiny").json()
        assert detail_answer["aliases"] == {"production": losing, "staging": losing}
        flags = {v["version"]: v["loses_to"] for v in detail_answer["version_details"]}
        assert flags[3] == [] and flags[losing] == ["seasonal_naive", "random_walk"]
        version = client.get(f"/v1/models/tiny/versions/{losing}").json()
        assert version["loses_to"] == ["seasonal_naive", "random_walk"]
        assert version["manifest"]["metrics"]["loses_to"] == ["seasonal_naive", "random_walk"]

        invalid = client.put("/v1/models/tiny/aliases/production", json={"version": 3, "force": "maybe"})
        assert invalid.status_code == 422
