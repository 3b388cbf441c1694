"""StreamService on a real database (SQLite or PostgreSQL) and a real ModelPool over a copy of the tiny registry."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from app.api.forecast_answers import answer_forecasts
from app.errors import InvalidInputError, NotFoundError
from app.registry.factory import open_registry
from app.serving.pool import ModelPool
from app.settings import Settings
from app.storage.schema import open_database
from app.streams.service import StreamService
from app.webhooks.outbox import Outbox

from .helpers import hourly_series

pytestmark = pytest.mark.slow


def run_with_service(settings: Settings, scenario: Callable[[StreamService], Awaitable[Any]]) -> Any:
    """A fresh service (new database connection, new pool) per call, like a server restart."""

    async def main() -> Any:
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


@pytest.fixture
def settings(models_dir: Path, make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(models_dir=models_dir)


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


def test_append_scores_after_history_and_reports_stream(settings: Settings) -> None:
    async def scenario(service: StreamService) -> None:
        info, created = await service.upsert("s1", "tiny", learning_points=20)
        assert created and info.point_count == 0 and info.last_timestamp is None
        assert info.detector.state == "learning" and info.detector.points_until_ready == 20
        result = await service.append("s1", batch(0, 30))
        assert result.model_name == "tiny" and result.model_version == 1
        assert [p.score is None for p in result.points] == [True] * 20 + [False] * 10
        info = await service.get("s1")
        assert info.point_count == 30 and info.last_timestamp == batch(29, 1)[0][0]
        assert info.state_model_version == 1 and info.detector.state == "scoring"
        assert info.detector.weights_age_points == 10 and info.detector.last_refit_at == batch(19, 1)[0][0]
        info, created = await service.upsert("s1", "tiny", sensitivity=0.9, learning_points=20)
        assert not created and info.detector.state == "scoring"  # a new sensitivity keeps the detector
        await service.delete("s1")
        with pytest.raises(NotFoundError):
            await service.get("s1")

    run_with_service(settings, scenario)


def test_duplicate_late_and_missing_readings_are_stored_unscored(settings: Settings) -> None:
    async def scenario(service: StreamService) -> None:
        await service.upsert("s1", None, learning_points=20)
        await service.append("s1", batch(0, 40))
        good = batch(40, 3)
        odd = [good[0], good[0], batch(10, 1)[0], (good[1][0], None), good[2]]
        result = await service.append("s1", odd)
        assert [p.index for p in result.points] == [40, 41, 42, 43, 44]
        assert [p.sampling for p in result.points][1:4] == ["duplicate", "late", "missing"]
        assert [p.score is None for p in result.points] == [False, True, True, True, False]
        assert result.points[3].value is None and result.model_name is None
        info = await service.get("s1")
        assert info.point_count == 45 and info.last_timestamp == good[2][0]  # the newest, not the late one
        stored = await service.latest_points("s1", 5)
        assert [(p.index, p.sampling, p.value) for p in stored] == [
            (p.index, p.sampling, p.value) for p in result.points
        ]
        with pytest.raises(InvalidInputError, match="send at least one point"):
            await service.append("s1", [])
        with pytest.raises(InvalidInputError, match="finite number or null"):
            await service.append("s1", [(good[2][0], float("nan"))])

    run_with_service(settings, scenario)


def test_self_learning_settings_and_reset(settings: Settings) -> None:
    async def scenario(service: StreamService) -> None:
        for bad in (19, 10_001):
            with pytest.raises(InvalidInputError) as refused:
                await service.upsert("s1", None, learning_points=bad)
            assert refused.value.fields == {"field": "learning_points"}
        with pytest.raises(InvalidInputError) as refused:
            await service.upsert("s1", None, alias="production")
        assert refused.value.fields == {"field": "alias"}
        info, _ = await service.upsert("s1", None, learning_points=30, alerts=False)
        assert info.model is None and info.alerts is False and info.detector.learning_points == 30
        await service.append("s1", batch(0, 40))
        assert (await service.get("s1")).detector.state == "scoring"
        info, _ = await service.upsert("s1", None, learning_points=25)  # restarts the detector
        assert info.detector.state == "learning" and info.detector.points_until_ready == 25
        assert info.point_count == 40 and info.alerts is True
        result = await service.append("s1", batch(40, 25))
        assert [p.index for p in result.points] == list(range(40, 65))
        assert result.points[-1].score is None and result.stream.detector.state == "scoring"
        info, _ = await service.upsert("s1", "tiny", learning_points=25)  # bound to a model: restarts too
        assert info.model == "tiny" and info.detector.state == "learning"
        result = await service.append("s1", batch(65, 26))
        assert result.model_version == 1 and result.points[-1].score is not None

    run_with_service(settings, scenario)


def test_restart_continues_with_identical_scores(settings: Settings) -> None:
    async def uninterrupted(service: StreamService) -> list[Any]:
        await service.upsert("reference", "tiny", sensitivity=0.7, learning_points=20)
        first = await service.append("reference", batch(0, 100, spike_at=180))
        second = await service.append("reference", batch(100, 100, spike_at=180))
        episodes = await service.anomalies("reference")
        return [outputs(first), outputs(second), episodes]

    async def part_one(service: StreamService) -> Any:
        await service.upsert("s1", "tiny", sensitivity=0.7, learning_points=20)
        return outputs(await service.append("s1", batch(0, 100, spike_at=180)))

    async def part_two(service: StreamService) -> Any:
        second = await service.append("s1", batch(100, 100, spike_at=180))
        return [outputs(second), await service.anomalies("s1")]

    expected = run_with_service(settings, uninterrupted)
    first = run_with_service(settings, part_one)
    second, episodes = run_with_service(settings, part_two)  # new service over the same database
    assert [first, second, episodes] == expected
    assert episodes and all(ep.resolved_at is not None for ep in episodes[:-1])


def test_anomalies_since_and_unknown_model(settings: Settings) -> None:
    async def scenario(service: StreamService) -> None:
        with pytest.raises(NotFoundError):
            await service.upsert("s2", "no-such-model")
        await service.upsert("s1", "tiny", sensitivity=0.7, learning_points=20)
        await service.append("s1", batch(0, 300, spike_at=250))
        episodes = await service.anomalies("s1")
        assert episodes and all(ep.resolved_at is not None for ep in episodes)
        later = batch(299, 1)[0][0] + timedelta(days=1)
        assert await service.anomalies("s1", since=later) == []

    run_with_service(settings, scenario)


def test_append_reports_the_stream_as_stored(settings: Settings) -> None:
    """The info an append returns is built in its transaction; it must equal a fresh read, open alarm included."""

    async def scenario(service: StreamService) -> None:
        await service.upsert("s1", "tiny", sensitivity=0.7, learning_points=20)
        opened = await service.append("s1", batch(0, 251, spike_at=250))
        assert opened.stream.open_episode is not None
        assert opened.stream == await service.get("s1")
        later = await service.append("s1", batch(251, 120))
        assert later.stream == await service.get("s1") and later.stream.point_count == 371
        [many] = await service.append_many([("s1", batch(371, 5))])
        assert many.stream == await service.get("s1")

    run_with_service(settings, scenario)
