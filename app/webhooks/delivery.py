"""The delivery worker: sends due outbox deliveries, at least once, from a background task of the server.

Each attempt: claim the delivery (its `next_attempt_at` becomes a lease of timeout + 5 s, so a crash mid-attempt
only delays a retry), resolve the URL once and check every address (fail closed), connect to the checked
address (`pinned_request_kwargs`) on a fresh connection with a fresh client (`trust_env=False`, no redirects),
sign with the same webhook-id and a fresh timestamp, and record the attempt.

Replicas: any number of servers may run this worker over one database. A delivery is claimed by exactly one of
them: on PostgreSQL the due rows are selected `FOR UPDATE SKIP LOCKED` (a replica never sees a row another is
claiming), and everywhere the lease is a compare-and-set on `next_attempt_at`. A replica that dies mid-attempt
leaves its lease to expire; another replica then retries with the same webhook-id (so a receiver may see an id
twice only when its claimant died between sending and recording: deduplicate on webhook-id). Events recorded by
other replicas are found by polling, at least every `IDLE_POLL_SECONDS`; the lease assumes the replicas' clocks
agree to well within `LEASE_MARGIN_SECONDS`.

Bounded cost: `webhook_timeout_seconds` is a TOTAL deadline per attempt (resolve, connect, send, response
headers), enforced with `asyncio.timeout` around all of it, so a receiver trickling header bytes cannot stretch
an attempt (httpx's own timeouts are per phase and reset on every byte). The response body is never read: the
connection is closed once the status and headers are in (headers are capped by httpcore at 100 KiB). Fairness: at
most `concurrency` attempts run at once, and at most `endpoint_concurrency` of them for one endpoint, so stalled
endpoints hold at most that many slots each and a healthy endpoint's event is claimed as soon as it is due.

Outcomes: 2xx succeeds; 410 Gone fails the message and disables the endpoint; anything else (3xx, which is
never followed, 4xx, 5xx, timeouts, refused connections, refused destinations) is retried along
`webhook_retry_schedule` (+-10 % jitter), no sooner than a `Retry-After` sent with 429/502/503/504. A message
whose schedule is exhausted has failed; `webhook_disable_after` consecutive failed messages disable the
endpoint (its pending deliveries are held, and replayed when it is re-enabled).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime

import httpx
from sqlalchemy import Row, func, select, update
from sqlalchemy.orm import Session

import app as package
from app.concurrency import run_blocking
from app.storage.database import Database
from app.storage.tables.webhooks import AttemptRow, DeliveryRow, EndpointRow, MessageRow
from app.timestamps import utc_now
from app.webhooks.outbox import FAILED, PENDING, SUCCEEDED, Outbox
from app.webhooks.signing import signed_headers
from app.webhooks.ssrf import DestinationPolicy, UnsafeDestinationError, pinned_request_kwargs

logger = logging.getLogger("tswatch.webhooks")

RETRY_AFTER_STATUSES = frozenset({429, 502, 503, 504})
MAX_RETRY_AFTER_SECONDS = 86_400.0
LEASE_MARGIN_SECONDS = 5.0
IDLE_POLL_SECONDS = 0.5
JITTER = 0.1
USER_AGENT = f"tswatch-webhooks/{package.__version__}"


@dataclass(frozen=True)
class Job:
    delivery_id: str
    message_id: str
    endpoint_id: str
    url: str
    secret: str
    payload: str


@dataclass(frozen=True)
class Outcome:
    success: bool
    status_code: int | None
    latency_ms: float
    error: str | None = None
    retry_after: float | None = None
    gone: bool = False


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP-date), capped at one day; None if absent/bad."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return min(float(text), MAX_RETRY_AFTER_SECONDS)
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    seconds = moment.timestamp() - (time.time() if now is None else now)
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS)


def classify_response(status: int, retry_after: str | None, latency_ms: float) -> Outcome:
    if 200 <= status < 300:
        return Outcome(True, status, latency_ms)
    if status == 410:
        return Outcome(False, status, latency_ms, "410 Gone: endpoint disabled", gone=True)
    error = f"redirect ({status}) not followed" if 300 <= status < 400 else f"HTTP {status}"
    wait = parse_retry_after(retry_after) if status in RETRY_AFTER_STATUSES else None
    return Outcome(False, status, latency_ms, error, retry_after=wait)


def next_delay(schedule: Sequence[float], attempts: int, retry_after: float | None) -> float | None:
    """Delay before attempt `attempts + 1`, or None when the schedule is exhausted."""
    if attempts >= len(schedule):
        return None
    delay = schedule[attempts] * random.uniform(1 - JITTER, 1 + JITTER)
    return max(delay, retry_after or 0.0)


_READY = (DeliveryRow.status == PENDING) & EndpointRow.enabled.is_(True)  # claimable unless leased/not due


def _lease(session: Session, delivery: DeliveryRow, until: datetime) -> bool:
    """Claim a due delivery by moving its `next_attempt_at` to the lease end; False if another worker won."""
    claimed = session.execute(
        update(DeliveryRow)
        .where(DeliveryRow.id == delivery.id, DeliveryRow.next_attempt_at == delivery.next_attempt_at)
        .values(next_attempt_at=until)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(claimed, "rowcount", 0))


class DeliveryWorker:
    def __init__(
        self,
        database: Database,
        outbox: Outbox,
        policy: DestinationPolicy,
        schedule: Sequence[float],
        timeout: float,
        disable_after: int,
        endpoint_concurrency: int,
        concurrency: int = 32,
    ) -> None:
        self.database = database
        self.outbox = outbox
        self.policy = policy
        self.schedule = tuple(schedule)
        self.timeout = timeout
        self.disable_after = disable_after
        self.concurrency = concurrency
        self.endpoint_concurrency = endpoint_concurrency
        self._event = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._inflight: dict[str, asyncio.Task[None]] = {}
        self._load: dict[str, int] = {}  # endpoint id -> attempts in flight

    # ---------------------------------------------------------------- lifecycle
    def start(self) -> None:
        loop = asyncio.get_running_loop()

        def wake() -> None:
            loop.call_soon_threadsafe(self._event.set)

        self.outbox.wake = wake
        self._task = asyncio.create_task(self._run(), name="tswatch-webhook-worker")

    async def stop(self) -> None:
        self.outbox.wake = None
        tasks = [task for task in (self._task, *self._inflight.values()) if task is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    # ---------------------------------------------------------------- loop
    async def _run(self) -> None:
        while True:
            wait = IDLE_POLL_SECONDS
            try:
                free = self.concurrency - len(self._inflight)
                if free > 0:
                    jobs, next_due = await run_blocking(
                        self._claim, free, set(self._inflight), dict(self._load)
                    )
                    for job in jobs:
                        self._launch(job)
                    if next_due is not None:
                        wait = min(wait, max((next_due - utc_now()).total_seconds(), 0.01))
            except Exception:
                logger.exception("webhook worker: claiming deliveries failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._event.wait(), wait)
            self._event.clear()

    def _launch(self, job: Job) -> None:
        task = asyncio.create_task(self._deliver(job))
        self._inflight[job.delivery_id] = task
        self._load[job.endpoint_id] = self._load.get(job.endpoint_id, 0) + 1

        def done(_task: asyncio.Task[None]) -> None:
            self._inflight.pop(job.delivery_id, None)
            remaining = self._load.pop(job.endpoint_id, 1) - 1
            if remaining > 0:
                self._load[job.endpoint_id] = remaining
            self._event.set()

        task.add_done_callback(done)

    def _claim(self, limit: int, busy: set[str], load: dict[str, int]) -> tuple[list[Job], datetime | None]:
        """Lease up to `limit` due deliveries, oldest first, keeping each endpoint within `endpoint_concurrency`
        attempts in flight (`load`: in flight now, by endpoint). Pages past the deliveries of endpoints that fill
        up, so a backlog for one endpoint never hides another's. Also returns when the next claimable one is due."""
        now = utc_now()
        lease = now + timedelta(seconds=self.timeout + LEASE_MARGIN_SECONDS)
        load, seen, jobs = dict(load), set(busy), list[Job]()
        with self.database.session() as session:
            while len(jobs) < limit:
                want = limit - len(jobs)
                page = self._due_page(session, now, seen, self._full(load), want)
                for delivery, endpoint, message in page:
                    seen.add(delivery.id)
                    if load.get(endpoint.id, 0) >= self.endpoint_concurrency or not _lease(
                        session, delivery, lease
                    ):
                        continue
                    load[endpoint.id] = load.get(endpoint.id, 0) + 1
                    jobs.append(
                        Job(
                            delivery.id,
                            message.id,
                            endpoint.id,
                            endpoint.url,
                            endpoint.secret,
                            message.payload,
                        )
                    )
                if len(page) < want:  # every due delivery has been looked at
                    break
            next_due = session.scalar(
                select(func.min(DeliveryRow.next_attempt_at))
                .join(EndpointRow, EndpointRow.id == DeliveryRow.endpoint_id)
                .where(_READY, DeliveryRow.id.not_in(seen), DeliveryRow.endpoint_id.not_in(self._full(load)))
            )
        return jobs, next_due

    @staticmethod
    def _due_page(
        session: Session, now: datetime, seen: set[str], full: set[str], size: int
    ) -> Sequence[Row[DeliveryRow, EndpointRow, MessageRow]]:
        """The oldest due deliveries not yet looked at, of enabled endpoints with a free slot."""
        return session.execute(
            select(DeliveryRow, EndpointRow, MessageRow)
            .join(EndpointRow, EndpointRow.id == DeliveryRow.endpoint_id)
            .join(MessageRow, MessageRow.id == DeliveryRow.message_id)
            .where(_READY, DeliveryRow.next_attempt_at <= now)
            .where(DeliveryRow.id.not_in(seen), DeliveryRow.endpoint_id.not_in(full))
            .order_by(DeliveryRow.next_attempt_at, DeliveryRow.created_at)
            .limit(size)
            # PostgreSQL: rows another replica is claiming right now are skipped, not waited for (only the
            # delivery rows are locked, so records of attempts on the same endpoint are never blocked).
            # SQLite renders no FOR UPDATE: its single writer and the lease's compare-and-set suffice.
            .with_for_update(skip_locked=True, of=DeliveryRow)
        ).all()

    def _full(self, load: dict[str, int]) -> set[str]:
        """Endpoints with no free slot: a finished attempt wakes the loop, so they need no polling."""
        return {endpoint for endpoint, count in load.items() if count >= self.endpoint_concurrency}

    # ---------------------------------------------------------------- one attempt
    async def _deliver(self, job: Job) -> None:
        attempted_at = utc_now()
        outcome = await self.attempt(job)
        await run_blocking(self._record, job, attempted_at, outcome)

    async def attempt(self, job: Job) -> Outcome:
        """One attempt, ended at `timeout` seconds from its start whatever the receiver does."""
        started = time.monotonic()

        def elapsed() -> float:
            return round((time.monotonic() - started) * 1000.0, 3)

        try:
            async with asyncio.timeout(self.timeout):
                status, retry_after = await self._post(job)
        except UnsafeDestinationError as error:
            return Outcome(False, None, elapsed(), f"destination refused: {error}"[:1000])
        except (TimeoutError, httpx.TimeoutException):
            return Outcome(False, None, elapsed(), f"timed out after {self.timeout:g} s")
        except httpx.HTTPError as error:
            return Outcome(False, None, elapsed(), f"{type(error).__name__}: {error}"[:1000])
        return classify_response(status, retry_after, elapsed())

    async def _post(self, job: Job) -> tuple[int, str | None]:
        """Resolve and check, then POST to the checked address: (status, Retry-After). The body is not read."""
        destination = await run_blocking(self.policy.resolve_checked, job.url)
        url, host_headers, extensions = pinned_request_kwargs(destination)
        body = job.payload.encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            **host_headers,
            **signed_headers(job.secret, job.message_id, body),
        }
        # A fresh client per attempt: a fresh connection, no proxies from the environment, no redirects.
        async with (
            httpx.AsyncClient(trust_env=False, follow_redirects=False, timeout=self.timeout) as client,
            client.stream("POST", url, content=body, headers=headers, extensions=extensions) as response,
        ):
            return response.status_code, response.headers.get("retry-after")

    def _record(self, job: Job, attempted_at: datetime, outcome: Outcome) -> None:
        with self.database.session() as session:
            session.add(
                AttemptRow(
                    delivery_id=job.delivery_id,
                    attempted_at=attempted_at,
                    status_code=outcome.status_code,
                    latency_ms=outcome.latency_ms,
                    error=outcome.error,
                    success=outcome.success,
                )
            )
            # The endpoint row is locked first (PostgreSQL; SQLite has one writer anyway): two replicas or two
            # attempts recording failures at once must not both read the same `consecutive_failures`.
            endpoint = session.get(EndpointRow, job.endpoint_id, with_for_update=True)
            delivery = session.get(DeliveryRow, job.delivery_id)
            if delivery is None or endpoint is None:  # deleted meanwhile
                return
            delivery.attempts += 1
            delivery.updated_at = utc_now()
            if outcome.success:
                delivery.status = SUCCEEDED
                endpoint.consecutive_failures = 0
                return
            if outcome.gone:
                delivery.status = FAILED
                endpoint.consecutive_failures += 1
                self.outbox.disable_endpoint(session, endpoint, "the endpoint answered 410 Gone", "gone")
                return
            if delivery.status != PENDING:  # held meanwhile: replayed with a fresh budget on re-enable
                return
            delay = next_delay(self.schedule, delivery.attempts, outcome.retry_after)
            if delay is not None:
                delivery.next_attempt_at = utc_now() + timedelta(seconds=delay)
                return
            delivery.status = FAILED
            endpoint.consecutive_failures += 1
            if endpoint.consecutive_failures >= self.disable_after:
                reason = f"{endpoint.consecutive_failures} consecutive messages failed"
                self.outbox.disable_endpoint(session, endpoint, reason, "failures")
