"""ModelPool unloading: versions no route points at are kept up to `max_unrouted`, least recently used first out."""

import asyncio
import json
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from app.api import inference_worker
from app.api.forecast_answers import answer_forecasts
from app.api.metrics import ApiMetrics
from app.registry.factory import open_registry
from app.serving.pool import ModelPool, PoolHooks
from app.serving.remote import InferenceUnavailableError, InferenceWorker
from app.settings import Settings

pytestmark = pytest.mark.slow


def forecast_body(window: int) -> bytes:
    stamps = [f"2024-03-01T{h:02d}:00:00" for h in range(window)]
    return json.dumps({"series": [{"values": [10.0] * window, "timestamps": stamps}], "horizon": 3}).encode()


def loaded_gauge(metrics: ApiMetrics) -> dict[str, float]:
    """tswatch_model_loaded per version, read from the rendered Prometheus text."""
    text = metrics.render()[0].decode()
    pattern = r'^tswatch_model_loaded\{model="tiny",version="(\d+)"\} (\S+)$'
    return {version: float(value) for version, value in re.findall(pattern, text, flags=re.M)}


def test_an_explicit_version_is_unloaded_by_the_lru_rule_and_loaded_again_on_request(
    models_dir: Path,
) -> None:
    registry = open_registry(Settings(models_dir=models_dir))
    metrics = ApiMetrics()
    loads: list[tuple[str, int, bool]] = []

    def on_load(name: str, version: int, ok: bool) -> None:
        loads.append((name, version, ok))
        metrics.model_loaded(name, version, ok)

    async def scenario(executor: ThreadPoolExecutor) -> None:
        worker = InferenceWorker(inference_worker.__name__, threads=1)
        hooks = PoolHooks(on_load=on_load, on_unload=metrics.model_unloaded)
        pool = ModelPool(registry, executor, answer_forecasts, hooks=hooks, worker=worker, max_unrouted=1)
        await worker.start()
        try:
            v2 = await pool.get("tiny", version=2)  # ?version=2: loaded, no route points at it
            body = forecast_body(v2.loaded.forecaster.spec.window)
            assert (await v2.batcher.submit(body)).kind == "ok"
            await pool.get("tiny", version=1)  # a second unrouted version: v2 is the least recently used
            assert pool.loaded_versions() == [("tiny", 1)]
            assert loaded_gauge(metrics) == {"1": 1.0, "2": 0.0}
            with pytest.raises(InferenceUnavailableError, match="KeyError"):  # gone from the worker too
                await worker.answer("tiny:2", {"name": "tiny", "version": 2}, [body])

            again = await pool.get("tiny", version=2)  # requested again: loaded again, v1 goes
            assert (await again.batcher.submit(body)).kind == "ok"
            assert loads.count(("tiny", 2, True)) == 2
            assert pool.loaded_versions() == [("tiny", 2)]

            # The version a route points at stays loaded however many others come and go.
            assert (await pool.get("tiny")).version == 1  # default route: production -> v1
            await pool.get("tiny", version=2)
            assert pool.loaded_versions() == [("tiny", 1), ("tiny", 2)]
            assert loaded_gauge(metrics) == {"1": 1.0, "2": 1.0}
        finally:
            await pool.close()
            await worker.close()

    with ThreadPoolExecutor(max_workers=1) as executor:
        asyncio.run(scenario(executor))
    registry.database.dispose()


def test_a_version_left_behind_by_an_alias_move_counts_as_unrouted(models_dir: Path) -> None:
    registry = open_registry(Settings(models_dir=models_dir))
    unloaded: list[tuple[str, int]] = []

    async def scenario(executor: ThreadPoolExecutor) -> None:
        hooks = PoolHooks(on_unload=lambda name, version: unloaded.append((name, version)))
        pool = ModelPool(registry, executor, answer_forecasts, hooks=hooks, max_unrouted=1)
        try:
            assert (await pool.get("tiny", alias="production")).version == 1
            await pool.get("tiny", version=2)
            registry.set_alias("tiny", "production", 2, force=True)
            await pool.refresh()  # the route moves to v2; v1 is the only unrouted version: kept
            assert pool.loaded_versions() == [("tiny", 1), ("tiny", 2)] and unloaded == []
            registry.delete_alias("tiny", "production")
            await pool.refresh()  # production no longer resolves: its route is dropped, v2 is unrouted too
            assert unloaded == [("tiny", 1)]  # the least recently requested of the two
            assert pool.loaded_versions() == [("tiny", 2)]
            assert (await pool.get("tiny", version=1)).version == 1  # loaded again on request
            assert unloaded == [("tiny", 1), ("tiny", 2)] and pool.loaded_versions() == [("tiny", 1)]
        finally:
            await pool.close()

    with ThreadPoolExecutor(max_workers=1) as executor:
        asyncio.run(scenario(executor))
    registry.database.dispose()


def test_max_unrouted_must_keep_at_least_one_version(tiny_models_dir: Path) -> None:
    registry = open_registry(Settings(models_dir=tiny_models_dir))
    with ThreadPoolExecutor(max_workers=1) as executor, pytest.raises(ValueError, match="at least 1"):
        ModelPool(registry, executor, answer_forecasts, max_unrouted=0)
    registry.database.dispose()
