"""The inference worker as a real child process: same forecasts as in-process, many in flight, restarts."""

import asyncio
import json
import os
import signal
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from app.api import inference_worker
from app.api.forecast_answers import answer_forecasts
from app.forecasting.forecaster import Forecaster
from app.registry.factory import open_registry
from app.serving.bodies import BodyReply
from app.serving.remote import InferenceUnavailableError, InferenceWorker
from app.settings import Settings

pytestmark = pytest.mark.slow


def same_forecasts(remote: np.ndarray, local: np.ndarray) -> None:
    """Equal up to float32 summation order (the worker runs torch on one thread, this process on several)."""
    np.testing.assert_allclose(remote, local, rtol=1e-5, atol=1e-6)


def tiny_forecaster(models_dir: Path, version: int = 1) -> Forecaster:
    registry = open_registry(Settings(models_dir=models_dir))
    return registry.load(registry.get_version("tiny", version)).forecaster


def forecast_body(forecaster: Forecaster, series: int, seed: int = 0) -> bytes:
    """A raw `/forecast` request body with `series` random hourly series of one window each."""
    window = forecaster.spec.window
    values = np.random.default_rng(seed).normal(10, 3, (series, window))
    stamps = [f"2024-03-{1 + h // 24:02d}T{h % 24:02d}:00:00" for h in range(window)]
    payload = [{"id": f"s{i}", "values": row.tolist(), "timestamps": stamps} for i, row in enumerate(values)]
    return json.dumps({"series": payload, "horizon": forecaster.spec.horizon}).encode()


def ref(key: str) -> dict[str, Any]:
    name, _, version = key.partition(":")
    return {"name": name, "version": int(version)}


def means(reply: BodyReply) -> np.ndarray:
    assert reply.kind == "ok", reply
    return np.array([forecast["mean"] for forecast in json.loads(reply.body)["forecasts"]])


def same_answers(remote: list[BodyReply], local: list[BodyReply]) -> None:
    assert [r.kind for r in remote] == [r.kind for r in local]
    for mine, theirs in zip(remote, local, strict=True):
        if mine.kind == "ok":
            same_forecasts(means(mine), means(theirs))


def with_worker(test: Callable[[InferenceWorker], Coroutine[Any, Any, None]]) -> None:
    async def run() -> None:
        worker = InferenceWorker(inference_worker.__name__, threads=1, restart_delay=0.1)
        await worker.start()
        try:
            await test(worker)
        finally:
            await worker.close()

    asyncio.run(run())


async def wait_connected(worker: InferenceWorker, pid: int | None, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not (worker.connected and worker.pid != pid):
        assert time.monotonic() < deadline, "the worker did not restart"
        await asyncio.sleep(0.05)


def test_the_worker_answers_raw_forecast_bodies_like_the_api_handler(tiny_models_dir: Path) -> None:
    forecaster = tiny_forecaster(tiny_models_dir)
    good = forecast_body(forecaster, series=5)
    bodies = [good, b"not json", good]

    async def check(worker: InferenceWorker) -> None:
        await worker.load("tiny:1", forecaster)
        replies = await worker.answer("tiny:1", ref("tiny:1"), bodies)
        local = answer_forecasts(forecaster, ref("tiny:1"), bodies)
        assert [r.kind for r in replies] == ["ok", "reparse", "ok"]
        same_answers(replies, local)
        assert replies[0].series == 5

    with_worker(check)


def test_many_batches_in_flight_are_answered_to_their_own_callers(tiny_models_dir: Path) -> None:
    models = {f"tiny:{v}": tiny_forecaster(tiny_models_dir, v) for v in (1, 2)}

    async def check(worker: InferenceWorker) -> None:
        for key, forecaster in models.items():
            await worker.load(key, forecaster)
        jobs = [(key, [forecast_body(models[key], 1 + i % 4, seed=i)]) for i in range(40) for key in models]
        answers = await asyncio.gather(*(worker.answer(key, ref(key), bodies) for key, bodies in jobs))
        for (key, bodies), answer in zip(jobs, answers, strict=True):
            same_answers(answer, answer_forecasts(models[key], ref(key), bodies))

    with_worker(check)


def test_a_killed_worker_fails_its_requests_with_503_then_comes_back_with_its_models(
    tiny_models_dir: Path,
) -> None:
    forecaster = tiny_forecaster(tiny_models_dir)
    big = [forecast_body(forecaster, series=200)]
    small = [forecast_body(forecaster, series=3, seed=1)]

    async def check(worker: InferenceWorker) -> None:
        await worker.load("tiny:1", forecaster)
        old_pid = worker.pid
        assert old_pid is not None
        in_flight = [worker.answer("tiny:1", ref("tiny:1"), big) for _ in range(20)]
        os.kill(old_pid, signal.SIGKILL)
        outcomes = await asyncio.gather(*in_flight, return_exceptions=True)
        failed = [o for o in outcomes if isinstance(o, Exception)]
        assert failed and all(isinstance(o, InferenceUnavailableError) and o.status == 503 for o in failed)
        await wait_connected(worker, old_pid)
        assert worker.restarts == 1
        remote = await worker.answer("tiny:1", ref("tiny:1"), small)
        same_answers(remote, answer_forecasts(forecaster, ref("tiny:1"), small))

    with_worker(check)


def test_worker_errors_are_reported_per_request(tiny_models_dir: Path) -> None:
    forecaster = tiny_forecaster(tiny_models_dir)
    bodies = [forecast_body(forecaster, series=2)]

    async def check(worker: InferenceWorker) -> None:
        with pytest.raises(InferenceUnavailableError, match="KeyError"):
            await worker.answer("never-loaded:1", ref("never-loaded:1"), bodies)
        await worker.load("tiny:1", forecaster)
        assert (await worker.answer("tiny:1", ref("tiny:1"), bodies))[0].series == 2

    with_worker(check)


def test_an_unloaded_model_is_gone_from_the_worker_and_stays_gone_after_a_restart(
    tiny_models_dir: Path,
) -> None:
    models = {f"tiny:{v}": tiny_forecaster(tiny_models_dir, v) for v in (1, 2)}
    bodies = [forecast_body(models["tiny:1"], series=1)]

    async def check(worker: InferenceWorker) -> None:
        for key, forecaster in models.items():
            await worker.load(key, forecaster)
        await worker.unload("tiny:2")
        await worker.unload("tiny:2")  # unloading twice is harmless
        with pytest.raises(InferenceUnavailableError, match="KeyError"):
            await worker.answer("tiny:2", ref("tiny:2"), bodies)
        old_pid = worker.pid
        assert old_pid is not None
        os.kill(old_pid, signal.SIGKILL)
        await wait_connected(worker, old_pid)
        assert (await worker.answer("tiny:1", ref("tiny:1"), bodies))[0].kind == "ok"
        with pytest.raises(InferenceUnavailableError, match="KeyError"):
            await worker.answer("tiny:2", ref("tiny:2"), bodies)

    with_worker(check)


def test_close_stops_the_worker_process(tiny_models_dir: Path) -> None:
    pids: list[int] = []

    async def check(worker: InferenceWorker) -> None:
        assert worker.pid is not None
        pids.append(worker.pid)

    with_worker(check)
    with pytest.raises(ProcessLookupError):
        os.kill(pids[0], 0)
