"""Fit tasks on an existing Ray cluster (`tswatch train --ray ADDRESS`). The only module that imports ray.

It is imported only when a Ray address is given, so the default path never loads ray (an optional extra:
`pip install 'tswatch[ray]'`). Every node needs tswatch installed (the same version as the driver): a task
runs `app.training.fit_tasks.run_fit_task`, imported by name on the worker. Workers never see the registry:
they return weights and manifest, and the driver publishes.

- A task whose worker or node dies is re-run by Ray (`max_retries`); an error raised by the training code
  itself is not retried and stops the run.
- Ctrl-C (or any error) while tasks are pending cancels every unfinished task (`ray.cancel(force=True)`
  kills the workers running them), so nothing keeps computing on the cluster.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Sequence
from types import TracebackType
from typing import Any

import ray
from ray.exceptions import RayTaskError

from app.errors import UnavailableError
from app.training.fit_tasks import FitOutcome, FitTask, TaskProgress, run_fit_task

DEFAULT_MAX_RETRIES = 3
CONNECT_TIMEOUT = 5.0
WAIT_SECONDS = 0.5  # how often the driver wakes while tasks run (Ctrl-C is seen within this)


class RayUnavailableError(UnavailableError):
    """The cluster at the given address cannot be reached."""


class RayRunner:
    """Connects on enter, disconnects on exit; `run` spreads the tasks over the cluster's CPUs."""

    def __init__(
        self, address: str, *, max_retries: int = DEFAULT_MAX_RETRIES, cpus_per_task: float = 1.0
    ) -> None:
        self.address = address
        self.max_retries = max_retries
        self.cpus_per_task = cpus_per_task

    def __enter__(self) -> RayRunner:
        _check_reachable(self.address)
        try:
            ray.init(
                address=self.address,
                log_to_driver=False,
                logging_level=logging.WARNING,
                include_dashboard=False,
                namespace="tswatch",
            )
        except (ConnectionError, RuntimeError, ValueError) as error:
            raise RayUnavailableError(
                f"cannot connect to the Ray cluster at {self.address}: {error}"
            ) from error
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        ray.shutdown()

    def run(self, tasks: Sequence[FitTask], progress: TaskProgress) -> list[FitOutcome]:
        remote = ray.remote(
            num_cpus=self.cpus_per_task, max_retries=self.max_retries, retry_exceptions=False
        )(run_fit_task)
        progress.start(len(tasks))
        refs = [remote.remote(task) for task in tasks]
        position = {ref: index for index, ref in enumerate(refs)}
        outcomes: list[FitOutcome | None] = [None] * len(refs)
        pending: list[Any] = list(refs)
        try:
            while pending:
                # every task finished by now (up to all of them), not one per call: O(tasks) calls, not O(tasks²)
                done, pending = ray.wait(pending, num_returns=len(pending), timeout=WAIT_SECONDS)
                for ref in done:
                    outcome = _get(ref)
                    outcomes[position[ref]] = outcome
                    progress.advance(outcome.name)
        except BaseException:
            _cancel(pending)
            raise
        finally:
            progress.finish()
        return [outcome for outcome in outcomes if outcome is not None]


def _check_reachable(address: str, timeout: float = CONNECT_TIMEOUT) -> None:
    """Fail fast on a head that does not answer: `ray.init` itself retries a wrong address for minutes."""
    target = address.split("://", 1)[-1]
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        return  # "auto" and the like: left to Ray
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as error:
        raise RayUnavailableError(f"no Ray cluster answers at {address}: {error}") from error


def _get(ref: Any) -> FitOutcome:
    """The task's outcome; a training error comes back as the original exception, not Ray's wrapper."""
    try:
        outcome = ray.get(ref)
    except RayTaskError as error:
        cause = error.cause
        if isinstance(cause, Exception):
            raise cause from None
        raise
    if not isinstance(outcome, FitOutcome):
        raise TypeError(f"a Ray task returned {type(outcome).__name__}, not a FitOutcome")
    return outcome


def _cancel(refs: list[Any]) -> None:
    for ref in refs:
        try:
            ray.cancel(ref, force=True)
        except Exception:  # a task finishing right now cannot be cancelled; there is nothing to stop
            continue
