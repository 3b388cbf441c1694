"""Hot stream state with snapshots: a stream rebuilt from its snapshot + a replay of the points stored since scores
bitwise as an uninterrupted run (in process, and through a server killed with SIGKILL); the snapshot cadence; a
sensitivity change before a restart; and two services (two replicas) appending to one stream at once."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from app.anomaly import DetectorConfig
from app.api.forecast_answers import answer_forecasts
from app.registry.factory import open_registry
from app.serving.pool import ModelPool
from app.settings import Settings
from app.storage.schema import open_database
from app.storage.tables.streams import StreamPointRow, StreamRow
from app.streams.scoring import StreamState
from app.streams.service import AppendResult, StreamService
from app.webhooks.outbox import Outbox

from .helpers import hourly_series

pytestmark = pytest.mark.slow

Scenario = Callable[[StreamService], Awaitable[Any]]
KINDS = {"self-learning": None, "model-bound": "tiny"}


def run_with_service(settings: Settings, scenario: Scenario, snapshot_points: int) -> Any:
    """A fresh service (new database connection, new pool, empty memory) per call, like a server restart."""

    async def main() -> Any:
        return await with_service(settings, snapshot_points, scenario)

    return asyncio.run(main())


async def with_service(settings: Settings, snapshot_points: int, scenario: Scenario) -> Any:
    database = open_database(settings)
    executor = ThreadPoolExecutor(max_workers=1)
    pool = ModelPool(open_registry(settings, database), executor, answer_forecasts)
    try:
        service = StreamService(database, pool, Outbox(database).record_alarms, snapshot_points)
        return await scenario(service)
    finally:
        await pool.close()
        executor.shutdown(wait=True)
        database.dispose()


def readings(start: int, count: int) -> list[tuple[datetime, float | None]]:
    stamps, values = hourly_series(200, seed=3)
    values[70] += 40.0  # an alarm, so the alarm policy's state matters too
    return [(stamps[i], None if i == 45 else float(values[i])) for i in range(start, start + count)]


def answers(result: AppendResult) -> tuple[Any, ...]:
    return (result.points, result.events, result.model_version, result.stream.detector)


def stored_row(settings: Settings, stream_id: str) -> StreamRow:
    database = open_database(settings)
    try:
        with database.session() as session:
            row = session.get(StreamRow, stream_id)
            assert row is not None
            session.expunge(row)
            return row
    finally:
        database.dispose()


BATCHES = [(0, 12), (12, 9), (21, 1), (22, 17), (39, 5), (44, 30), (74, 3), (77, 23), (100, 3)]


@pytest.mark.parametrize("kind", KINDS)
def test_rebuilt_from_snapshot_and_replay_scores_as_an_uninterrupted_run(
    make_settings: Callable[..., Settings], models_dir: Path, kind: str
) -> None:
    settings = make_settings(models_dir=models_dir)
    model = KINDS[kind]

    async def uninterrupted(service: StreamService) -> list[tuple[Any, ...]]:
        await service.upsert("hot", model, sensitivity=0.7, learning_points=20)
        return [answers(await service.append("hot", readings(*batch))) for batch in BATCHES]

    reference = run_with_service(settings, uninterrupted, snapshot_points=10_000)
    run_with_service(settings, lambda s: s.upsert("cold", model, sensitivity=0.7, learning_points=20), 7)
    restarted = []
    for batch in BATCHES:  # every append on a new service: rebuilt from the snapshot + replay each time

        async def one(service: StreamService, batch: tuple[int, int] = batch) -> tuple[Any, ...]:
            return answers(await service.append("cold", readings(*batch)))

        restarted.append(run_with_service(settings, one, snapshot_points=7))
        row = stored_row(settings, "cold")
        assert row.state_position is not None and row.state_position <= row.point_count
    assert restarted == reference
    assert any(event for _, events, _, _ in reference for event in events)  # the alarm opened
    cold = stored_row(settings, "cold")
    assert (cold.point_count, cold.state_position) == (103, 100)  # the last append replayed 3 points


@pytest.mark.parametrize("kind", KINDS)
def test_snapshot_cadence(make_settings: Callable[..., Settings], models_dir: Path, kind: str) -> None:
    settings = make_settings(models_dir=models_dir)

    async def scenario(service: StreamService) -> list[int | None]:
        await service.upsert("s", KINDS[kind], learning_points=20)
        positions = []
        for start in range(30):
            await service.append("s", readings(start, 1))
            positions.append(stored_row(settings, "s").state_position)
        return positions

    positions = run_with_service(settings, scenario, snapshot_points=7)
    # the fresh detector is stored at creation (0), then every 7 points after the last snapshot; model-bound:
    # binding the model version at the first point forces one
    expected = [7, 14, 21, 28] if kind == "self-learning" else [1, 8, 15, 22, 29]
    assert positions == [max((p for p in expected if p <= count), default=0) for count in range(1, 31)]


def test_sensitivity_change_then_restart_scores_as_without_restart(
    make_settings: Callable[..., Settings], models_dir: Path
) -> None:
    settings = make_settings(models_dir=models_dir)
    steps: list[tuple[str, Any]] = [
        ("append", (0, 50)),
        ("sensitivity", 0.99),
        ("append", (50, 15)),
        ("sensitivity", 0.6),
        ("append", (65, 20)),
        ("learning", 30),  # restarts the detector; the open alarm and position carry over
        ("append", (85, 40)),
    ]

    async def step(service: StreamService, stream_id: str, action: str, argument: Any) -> Any:
        if action == "append":
            return answers(await service.append(stream_id, readings(*argument)))
        if action == "sensitivity":
            return (await service.upsert(stream_id, None, sensitivity=argument, learning_points=20))[0]
        return (await service.upsert(stream_id, None, sensitivity=0.6, learning_points=argument))[0]

    async def uninterrupted(service: StreamService) -> list[Any]:
        await service.upsert("warm", None, sensitivity=0.7, learning_points=20)
        return [await step(service, "warm", *item) for item in steps]

    reference = run_with_service(settings, uninterrupted, snapshot_points=10_000)
    run_with_service(settings, lambda s: s.upsert("cold", None, sensitivity=0.7, learning_points=20), 10_000)
    restarted = []
    for item in steps:

        async def one(service: StreamService, item: tuple[str, Any] = item) -> Any:
            return await step(service, "cold", *item)

        restarted.append(run_with_service(settings, one, snapshot_points=10_000))
    for mine, theirs in zip(restarted, reference, strict=True):
        if isinstance(mine, tuple):
            assert mine == theirs
        else:  # StreamInfo: the same detector and alarm (ids and update times differ)
            assert (mine.detector, mine.open_episode, mine.point_count, mine.sensitivity) == (
                theirs.detector,
                theirs.open_episode,
                theirs.point_count,
                theirs.sensitivity,
            )


def test_two_services_appending_to_one_stream_store_every_point_once(
    make_settings: Callable[..., Settings], models_dir: Path
) -> None:
    """Two services over one database (two replicas) append single points to one stream at the same time: every
    point is stored once, at consecutive positions, and the stored scores are what one detector fed the stored
    readings in position order gives (each append was scored on the state left by the one before it)."""
    settings = make_settings(models_dir=models_dir)
    run_with_service(settings, lambda s: s.upsert("shared", None, learning_points=20), 10_000)
    per_replica = 40

    async def replica(offset: int) -> list[int]:
        async def scenario(service: StreamService) -> list[int]:
            indexes: list[int] = []
            for number in range(per_replica):
                reading = readings(2 * number + offset, 1)
                indexes.extend(point.index for point in (await service.append("shared", reading)).points)
            return indexes

        return list(await with_service(settings, 5, scenario))

    async def both() -> list[list[int]]:
        return list(await asyncio.gather(replica(0), replica(1)))

    first, second = asyncio.run(both())
    assert sorted(first + second) == list(range(2 * per_replica))
    database = open_database(settings)
    try:
        with database.session() as session:
            rows = session.scalars(
                select(StreamPointRow)
                .where(StreamPointRow.stream_id == "shared")
                .order_by(StreamPointRow.position)
            ).all()
            row = session.get(StreamRow, "shared")
            assert row is not None and row.point_count == 2 * per_replica
            sent = {reading for number in range(2 * per_replica) for reading in readings(number, 1)}
            assert {(point.timestamp, point.value) for point in rows} == sent
            assert [point.position for point in rows] == list(range(2 * per_replica))
            replayed = StreamState.fresh(DetectorConfig(learning_points=20), row.sensitivity)
            for point in rows:
                scored, _ = replayed.append(point.timestamp, point.value)
                assert (scored.score, scored.expected, scored.sampling) == (
                    point.score,
                    point.expected,
                    point.sampling or "regular",
                )
    finally:
        database.dispose()


def iso(stamp: datetime) -> str:
    return stamp.isoformat() + "Z"


def body(start: int, count: int) -> dict[str, Any]:
    return {"points": [{"timestamp": iso(stamp), "value": value} for stamp, value in readings(start, count)]}


def post(client: httpx.Client, stream_id: str, start: int, count: int) -> dict[str, Any]:
    reply = client.post(f"/v1/streams/{stream_id}/points", json=body(start, count))
    assert reply.status_code == 200, reply.text
    return dict(reply.json())


def test_server_killed_between_snapshots_resumes_bitwise(
    models_dir: Path, server_factory: Callable[..., Any], make_settings: Callable[..., Settings]
) -> None:
    """kill -9 right after an acknowledged append, 10 points past the last snapshot: the restarted server
    replays them and answers exactly as a stream fed the same batches without a restart."""
    config = {"sensitivity": 0.7, "learning_points": 20}
    before, after = [(0, 15), (15, 11), (26, 10)], [(36, 9), (45, 30), (75, 25)]
    victim = server_factory(models_dir, TSWATCH_STREAM_SNAPSHOT_POINTS="16")
    with victim.client() as client:
        assert client.put("/v1/streams/v", json=config).status_code == 201
        acknowledged = [post(client, "v", *batch) for batch in before]
    assert victim.stop(signal.SIGKILL) == -signal.SIGKILL
    victim_row = stored_row(make_settings(models_dir=models_dir), "v")
    assert (victim_row.point_count, victim_row.state_position) == (36, 26)  # 10 points to replay

    restarted = server_factory(models_dir, TSWATCH_STREAM_SNAPSHOT_POINTS="16")
    with restarted.client() as client:
        assert client.get("/v1/streams/v").json()["point_count"] == 36
        assert client.put("/v1/streams/r", json=config).status_code == 201
        reference = [post(client, "r", *batch) for batch in before]
        assert [reply["points"] for reply in reference] == [reply["points"] for reply in acknowledged]
        for batch in after:
            mine, theirs = post(client, "v", *batch), post(client, "r", *batch)
            assert (mine["points"], mine["events"]) == (theirs["points"], theirs["events"])
        differ = {"id", "created_at", "updated_at"}
        mine_info, their_info = client.get("/v1/streams/v").json(), client.get("/v1/streams/r").json()
        assert {k: v for k, v in mine_info.items() if k not in differ} == {
            k: v for k, v in their_info.items() if k not in differ
        }
