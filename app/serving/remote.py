"""The server's side of the inference worker (`app.serving.worker`): start it, load models, forecast, restart.

The worker process runs `python -m <module> --fd N --threads T`; `module` is the process's program, given to
`InferenceWorker` by the wiring (`app.api.services` passes `app.api.inference_worker`), which hands the frame loop
its `AnswerBodies` function. Serving itself never names the wire layer that answers the bodies.

Requests and replies are matched by id, so many batches can be in flight. If the worker dies, the requests it
held fail with 503, it is restarted after a short pause and every model it had is loaded again; nothing in the
server process is lost with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import socket
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from safetensors.torch import save as save_safetensors

from app.concurrency import run_blocking
from app.errors import UnavailableError
from app.forecasting.forecaster import Forecaster
from app.serving.bodies import BodyReply
from app.serving.frames import PREFIX, Frame, FrameError, decode_frame, encode_frame

logger = logging.getLogger("tswatch.serving")


class InferenceUnavailableError(UnavailableError):
    title = "Inference unavailable"


@dataclass
class _Waiter:
    future: asyncio.Future[Any]
    decode: Callable[[Frame], Any]  # the reply frame -> the future's result


def nothing(frame: Frame) -> None:
    return None


def body_replies(frame: Frame) -> list[BodyReply]:
    blob, offset, replies = frame.arrays[0].tobytes(), 0, []
    for described in frame.header["replies"]:
        body, offset = blob[offset : offset + described["size"]], offset + described["size"]
        replies.append(
            BodyReply(described["kind"], body, described["series"], described["detail"], described["fields"])
        )
    return replies


class InferenceWorker:
    def __init__(
        self,
        module: str,
        threads: int = 1,
        restart_delay: float = 0.5,
        on_restart: Callable[[], None] | None = None,
    ) -> None:
        self._module = module  # run with `python -m`: the worker process's program
        self._threads = threads
        self._on_restart = on_restart or (lambda: None)
        self._restart_delay = restart_delay
        self._process: subprocess.Popen[bytes] | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._restart_task: asyncio.Task[None] | None = None
        self._waiters: dict[int, _Waiter] = {}
        self._models: dict[str, tuple[dict[str, Any], np.ndarray]] = {}  # replayed after a restart
        self._ids = itertools.count()
        self._closing = False
        self.restarts = 0

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    @property
    def connected(self) -> bool:
        return self._writer is not None and not self._writer.is_closing()

    async def start(self) -> None:
        parent, child = socket.socketpair()
        with child:
            command = [sys.executable, "-m", self._module, "--fd", str(child.fileno())]
            command += ["--threads", str(self._threads)]
            self._process = subprocess.Popen(command, pass_fds=(child.fileno(),), start_new_session=True)
        reader, self._writer = await asyncio.open_unix_connection(sock=parent)
        self._reader_task = asyncio.create_task(self._read_replies(reader))
        await asyncio.gather(*(self._send_load(key) for key in list(self._models)))

    async def load(self, key: str, forecaster: Forecaster) -> None:
        """Make `forecaster` available in the worker under `key` (and again after any restart)."""
        tensors = {
            name: value.detach().contiguous() for name, value in forecaster.network.state_dict().items()
        }
        weights = np.frombuffer(save_safetensors(tensors), dtype=np.uint8)
        self._models[key] = (forecaster.spec.to_dict(), weights)
        await self._send_load(key)

    async def unload(self, key: str) -> None:
        """Drop model `key` from the worker (it is not loaded again after a restart either)."""
        if self._models.pop(key, None) is None:
            return
        with contextlib.suppress(InferenceUnavailableError):  # a lost worker restarts without it anyway
            await self._request({"op": "unload", "model": key}, [], nothing)

    def answer(self, key: str, ref: dict[str, Any], bodies: list[bytes]) -> asyncio.Future[list[BodyReply]]:
        """Replies of model `key` (reported as `ref`) to raw forecast request bodies, one per body."""
        blob = np.frombuffer(b"".join(bodies), dtype=np.uint8)
        header = {"op": "answer", "model": key, "ref": ref, "sizes": [len(body) for body in bodies]}
        return self._request(header, [blob], body_replies)

    async def _send_load(self, key: str) -> None:
        spec, weights = self._models[key]
        await self._request({"op": "load", "model": key, "spec": spec}, [weights], nothing)

    def _request(
        self, header: dict[str, Any], arrays: list[np.ndarray], decode: Callable[[Frame], Any]
    ) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if not self.connected:
            future.set_exception(self._unavailable("is restarting"))
            return future
        request_id = next(self._ids)
        self._waiters[request_id] = _Waiter(future, decode)
        assert self._writer is not None
        self._writer.write(encode_frame({**header, "id": request_id}, arrays))
        return future

    async def _read_replies(self, reader: asyncio.StreamReader) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError, FrameError):
            while True:
                head_size, payload_size = PREFIX.unpack(await reader.readexactly(PREFIX.size))
                body = await reader.readexactly(head_size + payload_size)
                self._resolve(decode_frame(body[:head_size], memoryview(body)[head_size:]))
        if not self._closing:
            self._lost()

    def _resolve(self, frame: Frame) -> None:
        waiter = self._waiters.pop(frame.header.get("id", -1), None)
        if waiter is None or waiter.future.done():
            return
        if "error" in frame.header:
            waiter.future.set_exception(self._unavailable(f"failed: {frame.header['error']}"))
        else:
            waiter.future.set_result(waiter.decode(frame))

    def _lost(self) -> None:
        code = None if self._process is None else self._process.poll()
        logger.error("inference worker (pid %s) stopped with exit code %s; restarting it", self.pid, code)
        self._fail_waiters(self._unavailable("stopped while answering; retry the request"))
        if self._writer is not None:
            self._writer.close()
        self._restart_task = asyncio.create_task(self._restart())

    async def _restart(self) -> None:
        if self._process is not None:
            await run_blocking(self._process.wait)
        await asyncio.sleep(self._restart_delay)
        self.restarts += 1
        self._on_restart()
        try:
            await self.start()
        except Exception:
            logger.exception("could not restart the inference worker; forecasts answer 503")
            return
        logger.info("inference worker restarted (pid %s) with %d models", self.pid, len(self._models))

    def _fail_waiters(self, error: Exception) -> None:
        waiters, self._waiters = self._waiters, {}
        for waiter in waiters.values():
            if not waiter.future.done():
                waiter.future.set_exception(error)

    @staticmethod
    def _unavailable(what: str) -> InferenceUnavailableError:
        return InferenceUnavailableError(f"the inference worker {what}")

    async def close(self) -> None:
        self._closing = True
        for task in (self._restart_task, self._reader_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._writer is not None:
            self._writer.close()
        self._fail_waiters(self._unavailable("is shutting down"))
        if self._process is not None:
            await run_blocking(self._stop_process, self._process)

    @staticmethod
    def _stop_process(process: subprocess.Popen[bytes]) -> None:
        try:
            process.wait(timeout=5)  # it exits on its own once the socket closes
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
