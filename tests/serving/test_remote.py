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

from app.api.forecast_bodies import answer_forecasts
from app.forecasting.forecaster import Forecaster
from app.registry.factory import open_registry
from app.serving.bodies import AnswerBodies
from app.serving.remote import InferenceUnavailableError, InferenceWorker
from app.settings import Settings

pytestmark = pytest.mark.slow


def same_forecasts(remote: np.ndarray, local: np.ndarray) -> None:
    """Equal up to float32 summation order (the worker runs torch on one thread, this process on several)."""
    np.testing.assert_allclose(remote, local, rtol=1e-5, atol=1e-6)


def tiny_forecaster(models_dir: Path, version: int = 1) -> Forecaster:
    registry = open_registry(Settings(models_dir=models_dir))
    return registry.load(registry.get_version("tiny", version)).forecaster


def inputs(forecaster: Forecaster, rows: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray | None]:
    spec = forecaster.spec
    windows = np.random.default_rng(seed).normal(10, 3, (rows, spec.window)).astype(np.float32)
    stamps = np.datetime64("2024-03-01T00:00") + np.arange(spec.window) * np.timedelta64(1, "h")
    calendar = forecaster.calendar(np.tile(stamps, (rows, 1))) if forecaster.uses_calendar else None
    return windows, calendar


def with_worker(
    test: Callable[[InferenceWorker], Coroutine[Any, Any, None]], answer: AnswerBodies | None = None
) -> None:
    async def run() -> None:
        worker = InferenceWorker(threads=1, restart_delay=0.1, answer=answer)
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


def test_worker_forecasts_equal_in_process_forecasts(tiny_models_dir: Path) -> None:
    forecaster = tiny_forecaster(tiny_models_dir)
    windows, calendar = inputs(forecaster, rows=5)

    async def check(worker: InferenceWorker) -> None:
        await worker.load("tiny:1", forecaster)
        remote = await worker.predict("tiny:1", windows, calendar)
        same_forecasts(remote, forecaster.predict(windows, calendar))

    with_worker(check)


def test_many_batches_in_flight_are_answered_to_their_own_callers(tiny_models_dir: Path) -> None:
    models = {f"tiny:{v}": tiny_forecaster(tiny_models_dir, v) for v in (1, 2)}

    async def check(worker: InferenceWorker) -> None:
        for key, forecaster in models.items():
            await worker.load(key, forecaster)
        jobs = [(key, *inputs(models[key], rows=1 + i % 4, seed=i)) for i in range(40) for key in models]
        answers = await asyncio.gather(*(worker.predict(key, w, c) for key, w, c in jobs))
        for (key, windows, calendar), answer in zip(jobs, answers, strict=True):
            same_forecasts(answer, models[key].predict(windows, calendar))

    with_worker(check)


def test_a_killed_worker_fails_its_requests_with_503_then_comes_back_with_its_models(
    tiny_models_dir: Path,
) -> None:
    forecaster = tiny_forecaster(tiny_models_dir)
    windows, calendar = inputs(forecaster, rows=200)

    async def check(worker: InferenceWorker) -> None:
        await worker.load("tiny:1", forecaster)
        old_pid = worker.pid
        assert old_pid is not None
        in_flight = [worker.predict("tiny:1", windows, calendar) for _ in range(20)]
        os.kill(old_pid, signal.SIGKILL)
        outcomes = await asyncio.gather(*in_flight, return_exceptions=True)
        failed = [o for o in outcomes if isinstance(o, Exception)]
        assert failed and all(isinstance(o, InferenceUnavailableError) and o.status == 503 for o in failed)
        await wait_connected(worker, old_pid)
        assert worker.restarts == 1
        few = None if calendar is None else calendar[:3]
        same_forecasts(await worker.predict("tiny:1", windows[:3], few), forecaster.predict(windows[:3], few))

    with_worker(check)


def test_the_worker_answers_raw_forecast_bodies_like_the_api_handler(tiny_models_dir: Path) -> None:
    forecaster = tiny_forecaster(tiny_models_dir)
    stamps = [f"2024-03-01T{h:02d}:00:00" for h in range(24)] + [
        f"2024-03-02T{h:02d}:00:00" for h in range(6)
    ]
    good = json.dumps({"series": [{"values": list(range(30)), "timestamps": stamps}], "horizon": 3}).encode()
    bodies = [good, b"not json", good]
    ref = {"name": "tiny", "version": 1}

    async def check(worker: InferenceWorker) -> None:
        await worker.load("tiny:1", forecaster)
        replies = await worker.answer("tiny:1", ref, bodies)
        local = answer_forecasts(forecaster, ref, bodies)
        assert [r.kind for r in replies] == [r.kind for r in local] == ["ok", "reparse", "ok"]
        remote_mean = json.loads(replies[0].body)["forecasts"][0]["mean"]
        same_forecasts(np.array(remote_mean), np.array(json.loads(local[0].body)["forecasts"][0]["mean"]))

    with_worker(check, answer=answer_forecasts)


def test_worker_errors_are_reported_per_request(tiny_models_dir: Path) -> None:
    forecaster = tiny_forecaster(tiny_models_dir)
    windows, calendar = inputs(forecaster, rows=2)

    async def check(worker: InferenceWorker) -> None:
        with pytest.raises(InferenceUnavailableError, match="KeyError"):
            await worker.predict("never-loaded:1", windows, calendar)
        await worker.load("tiny:1", forecaster)
        assert (await worker.predict("tiny:1", windows, calendar)).shape[0] == 2

    with_worker(check)


def test_close_stops_the_worker_process(tiny_models_dir: Path) -> None:
    pids: list[int] = []

    async def check(worker: InferenceWorker) -> None:
        assert worker.pid is not None
        pids.append(worker.pid)

    with_worker(check)
    with pytest.raises(ProcessLookupError):
        os.kill(pids[0], 0)
