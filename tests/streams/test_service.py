"""StreamService on a real SQLite database and a real ModelPool over a copy of the tiny registry."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from app.api.forecast_answers import answer_forecasts
from app.errors import ConflictError, InvalidInputError, NotFoundError
from app.registry.factory import open_registry
from app.serving.pool import ModelPool
from app.settings import Settings
from app.storage.schema import open_database
from app.streams.service import StreamService
from app.timestamps import to_state_iso
from app.webhooks.outbox import Outbox

from .helpers import hourly_series

pytestmark = pytest.mark.slow


def run_with_service(models_dir: Path, scenario: Callable[[StreamService], Awaitable[Any]]) -> Any:
    """A fresh service (new database connection, new pool) per call, like a server restart."""

    async def main() -> Any:
        settings = Settings(models_dir=models_dir)
        database = open_database(settings)
        executor = ThreadPoolExecutor(max_workers=1)
        pool = ModelPool(open_registry(settings, database), executor, answer_forecasts)
        try:
            return await scenario(StreamService(database, pool, Outbox(database).record_alarms))
        finally:
            await pool.close()
            executor.shutdown(wait=True)
            database.dispose()

    return asyncio.run(main())


def batch(start: int, count: int, spike_at: int | None = None) -> list[tuple[Any, float]]:
    stamps, values = hourly_series(400, seed=7)
    if spike_at is not None:
        values[spike_at] += 60.0
    return [(stamps[i], float(values[i])) for i in range(start, start + count)]


def outputs(result: Any) -> list[tuple[Any, ...]]:
    return [
        (p.index, p.timestamp, p.expected, p.lower, p.upper, p.score, p.is_anomaly, p.direction)
        for p in result.points
    ]


def test_append_scores_after_history_and_reports_stream(models_dir: Path) -> None:
    async def scenario(service: StreamService) -> None:
        info, created = await service.upsert("s1", "tiny")
        assert created and info.point_count == 0 and info.last_timestamp is None
        result = await service.append("s1", batch(0, 30))
        assert result.model_name == "tiny" and result.model_version == 1
        assert [p.score is None for p in result.points] == [True] * 24 + [False] * 6
        info = await service.get("s1")
        assert info.point_count == 30 and info.last_timestamp == batch(29, 1)[0][0]
        assert info.state_model_version == 1
        _, created = await service.upsert("s1", "tiny", sensitivity=0.9)
        assert not created
        await service.delete("s1")
        with pytest.raises(NotFoundError):
            await service.get("s1")

    run_with_service(models_dir, scenario)


def test_out_of_order_and_duplicates_change_nothing(models_dir: Path) -> None:
    async def scenario(service: StreamService) -> None:
        await service.upsert("s1", "tiny")
        await service.append("s1", batch(0, 40))
        before = await service.get("s1")
        good = batch(40, 3)
        with pytest.raises(ConflictError, match="not after the stream's last point"):
            await service.append("s1", batch(39, 2))  # overlaps the stored last point
        with pytest.raises(InvalidInputError, match="duplicates"):
            await service.append("s1", [good[0], good[1], good[1]])
        with pytest.raises(InvalidInputError, match="comes before"):
            await service.append("s1", [good[1], good[0]])
        assert await service.get("s1") == before
        fresh = await service.append("s1", good)  # the same points are still accepted afterwards
        assert [p.index for p in fresh.points] == [40, 41, 42]

    run_with_service(models_dir, scenario)


def test_restart_continues_with_identical_scores(models_dir: Path, tmp_path: Path) -> None:
    reference_dir = tmp_path / "reference"
    import shutil

    shutil.copytree(models_dir, reference_dir)

    async def uninterrupted(service: StreamService) -> list[Any]:
        await service.upsert("s1", "tiny", sensitivity=0.7)
        first = await service.append("s1", batch(0, 100, spike_at=150))
        second = await service.append("s1", batch(100, 100, spike_at=150))
        episodes = await service.anomalies("s1")
        return [outputs(first), outputs(second), episodes]

    async def part_one(service: StreamService) -> Any:
        await service.upsert("s1", "tiny", sensitivity=0.7)
        return outputs(await service.append("s1", batch(0, 100, spike_at=150)))

    async def part_two(service: StreamService) -> Any:
        second = await service.append("s1", batch(100, 100, spike_at=150))
        return [outputs(second), await service.anomalies("s1")]

    expected = run_with_service(reference_dir, uninterrupted)
    first = run_with_service(models_dir, part_one)
    second, episodes = run_with_service(models_dir, part_two)  # new service over the same database
    assert [first, second, episodes] == expected
    assert any(ep.peak_timestamp == to_state_iso(batch(150, 1)[0][0]) for ep in episodes)
    assert episodes[0].resolved_at is not None and episodes[0].direction == "up"


def test_anomalies_since_and_unknown_model(models_dir: Path) -> None:
    async def scenario(service: StreamService) -> None:
        with pytest.raises(NotFoundError):
            await service.upsert("s2", "no-such-model")
        await service.upsert("s1", "tiny", sensitivity=0.7)
        await service.append("s1", batch(0, 120, spike_at=60))
        episodes = await service.anomalies("s1")
        assert episodes and all(ep.resolved_at is not None for ep in episodes)
        later = batch(119, 1)[0][0] + timedelta(days=1)
        assert await service.anomalies("s1", since=later) == []

    run_with_service(models_dir, scenario)


def test_append_reports_the_stream_as_stored(models_dir: Path) -> None:
    """The info an append returns is built in its transaction; it must equal a fresh read, open alarm included."""

    async def scenario(service: StreamService) -> None:
        await service.upsert("s1", "tiny", sensitivity=0.7)
        opened = await service.append("s1", batch(0, 41, spike_at=40))
        assert opened.stream.open_episode is not None
        assert opened.stream == await service.get("s1")
        later = await service.append("s1", batch(41, 120))
        assert later.stream == await service.get("s1") and later.stream.point_count == 161
        [many] = await service.append_many([("s1", batch(161, 5))])
        assert many.stream == await service.get("s1")

    run_with_service(models_dir, scenario)
