"""ModelPool remembers a version that failed verification until its files or its registry row change."""

import asyncio
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import update

from app.api.forecast_answers import answer_forecasts
from app.registry.artifacts import WEIGHTS_FILE, ArtifactIntegrityError
from app.registry.factory import open_registry
from app.registry.store import Registry
from app.serving.pool import ModelPool, PoolHooks
from app.settings import Settings
from app.storage.tables.registry import VersionRow

pytestmark = pytest.mark.slow


def corrupt(path: Path) -> bytes:
    original = path.read_bytes()
    data = bytearray(original)
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    return original


def attempts(loads: list[tuple[str, int, bool]], version: int) -> list[bool]:
    return [ok for name, v, ok in loads if (name, v) == ("tiny", version)]


def run_with_pool(
    models_dir: Path, scenario: Callable[[ModelPool, Registry], Awaitable[None]]
) -> list[tuple[str, int, bool]]:
    """Run `scenario(pool, registry)` against a pool on the thread path; returns every load attempt's outcome."""
    registry = open_registry(Settings(models_dir=models_dir))
    loads: list[tuple[str, int, bool]] = []
    hooks = PoolHooks(on_load=lambda name, version, ok: loads.append((name, version, ok)))

    async def main(executor: ThreadPoolExecutor) -> None:
        pool = ModelPool(registry, executor, answer_forecasts, hooks=hooks)
        try:
            await scenario(pool, registry)
        finally:
            await pool.close()

    try:
        with ThreadPoolExecutor(max_workers=1) as executor:
            asyncio.run(main(executor))
    finally:
        registry.database.dispose()
    return loads


def test_requests_for_a_corrupt_version_do_not_read_it_again(models_dir: Path) -> None:
    weights = models_dir / "tiny" / "2" / WEIGHTS_FILE
    original = corrupt(weights)

    async def scenario(pool: ModelPool, registry: Registry) -> None:
        for _ in range(3):
            with pytest.raises(ArtifactIntegrityError) as caught:
                await pool.get("tiny", version=2)
            assert (
                caught.value.detail == "model 'tiny' version 2 failed verification: weights sha256 mismatch"
            )
            assert caught.value.fields == {"name": "tiny", "version": 2}
        weights.write_bytes(original)  # repaired
        assert (await pool.get("tiny", version=2)).version == 2

    assert attempts(run_with_pool(models_dir, scenario), 2) == [False, True]


def test_a_changed_registry_row_or_a_removed_file_is_tried_again(models_dir: Path) -> None:
    weights = models_dir / "tiny" / "2" / WEIGHTS_FILE
    corrupt(weights)

    def set_weights_sha256(registry: Registry, digest: str) -> None:
        with registry.database.session() as session:
            session.execute(
                update(VersionRow)
                .where(VersionRow.model_name == "tiny", VersionRow.version == 2)
                .values(weights_sha256=digest)
            )

    async def scenario(pool: ModelPool, registry: Registry) -> None:
        recorded = registry.get_version("tiny", 2).weights_sha256
        with pytest.raises(ArtifactIntegrityError, match="sha256"):
            await pool.get("tiny", version=2)
        set_weights_sha256(registry, "0" * 64)
        with pytest.raises(ArtifactIntegrityError, match="names other weights"):
            await pool.get("tiny", version=2)
        set_weights_sha256(registry, recorded)
        weights.unlink()
        with pytest.raises(ArtifactIntegrityError) as caught:
            await pool.get("tiny", version=2)
        assert (
            caught.value.detail == "model 'tiny' version 2 failed verification: model.safetensors is missing"
        )

    assert attempts(run_with_pool(models_dir, scenario), 2) == [False, False, False]


def test_the_alias_watcher_tries_a_corrupt_version_once_and_again_once_repaired(models_dir: Path) -> None:
    weights = models_dir / "tiny" / "2" / WEIGHTS_FILE
    original = corrupt(weights)

    async def scenario(pool: ModelPool, registry: Registry) -> None:
        assert (await pool.get("tiny")).version == 1
        registry.set_alias("tiny", "production", 2, force=True)
        for _ in range(5):
            await pool.refresh()
        assert pool.routes() == {("tiny", None): 1}  # v1 keeps serving
        weights.write_bytes(original)
        await pool.refresh()
        assert pool.routes() == {("tiny", None): 2}

    assert attempts(run_with_pool(models_dir, scenario), 2) == [False, True]
