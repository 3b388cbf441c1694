"""Large `/detect` bodies parsed in a child process, so the server's event loop never waits on them.

A worker thread is not enough: pydantic-core validates a whole body in one call that holds the GIL
(0.6 s for 200,000 points), and turning the parsed values into arrays is another long C call; either freezes
every concurrent request (measured with bench/detect.py). The child runs `parse_detect_body` unchanged and
sends back the model inputs (numpy arrays) or FastAPI's validation errors as plain data, so the answers are
exactly those of the in-process parse. If the child dies, the parse falls back to a thread and a new child
is started for the next body.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from fastapi.exceptions import RequestValidationError

from app.api.detect_wire import ParsedDetect, parse_detect_body
from app.concurrency import run_blocking
from app.processes import die_with_parent
from app.serving.detection import release_free_memory

logger = logging.getLogger("tswatch.api")


def _parse_in_child(content_type: str | None, body: bytes) -> tuple[str, Any]:
    """("ok", (options, inputs)) or ("invalid", FastAPI's error list): plain picklable data either way."""
    try:
        return "ok", parse_detect_body(content_type, body)
    except RequestValidationError as error:
        return "invalid", list(error.errors())
    finally:
        release_free_memory()


def _warm() -> None:
    """Nothing: importing this module in the child (done by unpickling the call) is the warm-up."""


class DetectBodyParser:
    """One spawned child that parses `/detect` bodies, one at a time."""

    def __init__(self) -> None:
        self._executor = self._new_executor()

    @staticmethod
    def _new_executor() -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=1, mp_context=multiprocessing.get_context("spawn"), initializer=die_with_parent
        )

    def warm(self) -> None:
        """Start the child now (imports take seconds), not on the first body."""
        self._executor.submit(_warm)

    async def parse(self, content_type: str | None, body: bytes) -> ParsedDetect:
        try:
            loop = asyncio.get_running_loop()
            kind, payload = await loop.run_in_executor(self._executor, _parse_in_child, content_type, body)
        except BrokenProcessPool:
            logger.warning("the detect body parser process died; parsing this body in a thread")
            self._executor = self._new_executor()
            return await run_blocking(parse_detect_body, content_type, body)
        if kind == "invalid":
            raise RequestValidationError(payload)
        parsed: ParsedDetect = payload
        return parsed

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
