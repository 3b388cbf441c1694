"""The durable outbox: events are written as rows of `webhook_messages`, with one `webhook_deliveries` row per
subscribed endpoint, IN THE TRANSACTION that caused them (for alarms: the one storing the points and the alarm
state). The delivery worker only ever reads committed rows, so a crash at any moment loses no event and never
announces an alarm that was not stored.

Delivery states: pending (due at `next_attempt_at`), held (endpoint disabled; replayed when re-enabled),
succeeded, failed (retry schedule exhausted, or 410 Gone).
"""

from __future__ import annotations

import json
import math
import secrets as _secrets
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any, Final

from sqlalchemy import event, select, update
from sqlalchemy.orm import Session

from app.anomaly import AlarmEvent, Episode
from app.anomaly.points import ScoredPoint
from app.storage.database import Database
from app.storage.tables.webhooks import DeliveryRow, EndpointRow, MessageRow
from app.streams.service import StagedAppend
from app.timestamps import from_state_iso, to_iso_z, utc_now

ANOMALY_OPENED: Final = "anomaly.opened"
ANOMALY_RESOLVED: Final = "anomaly.resolved"
ENDPOINT_DISABLED: Final = "endpoint.disabled"
PING: Final = "ping"
EVENT_TYPES: Final = (ANOMALY_OPENED, ANOMALY_RESOLVED, ENDPOINT_DISABLED)
ALL_STREAMS: Final = "*"
MAX_PAYLOAD_BYTES: Final = 20_000

PENDING, HELD, SUCCEEDED, FAILED = "pending", "held", "succeeded", "failed"


def new_id(prefix: str) -> str:
    return f"{prefix}_{_secrets.token_hex(12)}"


def _finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def _point(point: ScoredPoint | None) -> dict[str, Any] | None:
    if point is None:
        return None
    return {
        "index": point.index,
        "timestamp": to_iso_z(point.timestamp),
        "value": _finite(point.value),
        "expected": _finite(point.expected),
        "lower": _finite(point.lower),
        "upper": _finite(point.upper),
        "score": _finite(point.score),
        "is_anomaly": point.is_anomaly,
        "direction": point.direction,
        "sampling": point.sampling,
    }


def _episode(episode: Episode) -> dict[str, Any]:
    peak = episode.peak
    return {
        "started_at": to_iso_z(from_state_iso(episode.started_at)),
        "opened_at": to_iso_z(from_state_iso(episode.opened_at)),
        "last_flagged_at": to_iso_z(from_state_iso(episode.last_flagged_at)),
        "resolved_at": None if episode.resolved_at is None else to_iso_z(from_state_iso(episode.resolved_at)),
        "peak": {
            "timestamp": to_iso_z(from_state_iso(peak.timestamp)),
            "value": _finite(peak.value),
            "expected": _finite(peak.expected),
            "lower": _finite(peak.lower),
            "upper": _finite(peak.upper),
            "score": _finite(peak.score),
            "direction": peak.direction,
        },
        "n_points": episode.n_points,
        "n_flagged": episode.n_flagged,
    }


def alarm_data(staged: StagedAppend, alarm: AlarmEvent) -> dict[str, Any]:
    """The stream, model version (null for a self-learning stream), the point that opened/resolved the alarm
    (value, expected, band, score)."""
    episode = alarm.episode
    stamp = episode.opened_at if alarm.kind == "opened" else episode.resolved_at
    at = None if stamp is None else to_iso_z(from_state_iso(stamp))  # a stream's tracker keeps state ISO
    point = next((p for p in staged.points if to_iso_z(p.timestamp) == at), None)
    return {
        "stream": staged.stream_id,
        "model": None
        if staged.model_name is None
        else {"name": staged.model_name, "version": staged.model_version},
        "point": _point(point),
        "episode": _episode(episode),
    }


def encode_payload(event_type: str, data: dict[str, Any]) -> str:
    body = {"type": event_type, "timestamp": to_iso_z(utc_now()), "data": data}
    text = json.dumps(body, separators=(",", ":"), allow_nan=False, ensure_ascii=False)
    if len(text.encode()) >= MAX_PAYLOAD_BYTES:  # only a stream id near its length limit could come close
        raise ValueError(f"{event_type} payload exceeds {MAX_PAYLOAD_BYTES} bytes")
    return text


def subscribed(endpoint: EndpointRow, event_type: str, stream_id: str | None) -> bool:
    if event_type not in json.loads(endpoint.events):
        return False
    streams = json.loads(endpoint.streams)
    return stream_id is None or ALL_STREAMS in streams or stream_id in streams


class Outbox:
    """Writes events and their deliveries into the caller's transaction; `wake` runs after the commit."""

    def __init__(self, database: Database, first_delay: float = 0.0) -> None:
        self.database = database
        self.first_delay = first_delay
        self.wake: Callable[[], None] | None = None

    def record_alarms(self, session: Session, staged: StagedAppend) -> None:
        """The StreamService alarm sink: one message per alarm opened or resolved by these points; none when
        the append's alerts are off (the stream's option or the request's `alerts=false`)."""
        if not staged.alerts:
            return
        for alarm in staged.events:
            event_type = ANOMALY_OPENED if alarm.kind == "opened" else ANOMALY_RESOLVED
            self.enqueue(session, event_type, alarm_data(staged, alarm), stream_id=staged.stream_id)

    def enqueue(
        self,
        session: Session,
        event_type: str,
        data: dict[str, Any],
        *,
        stream_id: str | None = None,
        endpoint_id: str | None = None,
        targets: Sequence[EndpointRow] | None = None,
    ) -> tuple[str, list[str]]:
        """Write one message and a delivery to each target (default: every subscribed endpoint)."""
        message = MessageRow(
            id=new_id("msg"),
            event_type=event_type,
            stream_id=stream_id,
            endpoint_id=endpoint_id,
            payload=encode_payload(event_type, data),
            created_at=utc_now(),
        )
        session.add(message)
        session.flush()  # the message row before its deliveries (foreign key)
        if targets is None:
            candidates = session.scalars(select(EndpointRow)).all()
            targets = [row for row in candidates if subscribed(row, event_type, stream_id)]
        due = utc_now() + timedelta(seconds=self.first_delay)
        deliveries = []
        for endpoint in targets:
            delivery = DeliveryRow(
                id=new_id("dlv"),
                message_id=message.id,
                endpoint_id=endpoint.id,
                status=PENDING if endpoint.enabled else HELD,
                attempts=0,
                next_attempt_at=due,
            )
            session.add(delivery)
            deliveries.append(delivery.id)
        if deliveries:
            self.wake_after_commit(session)
        return message.id, deliveries

    def wake_after_commit(self, session: Session) -> None:
        if self.wake is not None:
            wake = self.wake
            event.listen(session, "after_commit", lambda _session: wake(), once=True)

    def disable_endpoint(self, session: Session, endpoint: EndpointRow, reason: str, trigger: str) -> None:
        """Disable, hold its pending deliveries, and keep an `endpoint.disabled` record (a message, also
        delivered to other endpoints subscribed to that event)."""
        if not endpoint.enabled:
            return
        endpoint.enabled = False
        endpoint.disabled_at = utc_now()
        endpoint.disabled_reason = reason
        endpoint.updated_at = utc_now()
        hold_pending(session, endpoint.id)
        data = {
            "endpoint_id": endpoint.id,
            "reason": reason,
            "trigger": trigger,
            "consecutive_failures": endpoint.consecutive_failures,
            "disabled_at": to_iso_z(endpoint.disabled_at),
        }
        others = [
            row
            for row in session.scalars(select(EndpointRow).where(EndpointRow.id != endpoint.id))
            if subscribed(row, ENDPOINT_DISABLED, None)
        ]
        self.enqueue(session, ENDPOINT_DISABLED, data, endpoint_id=endpoint.id, targets=others)


def hold_pending(session: Session, endpoint_id: str) -> None:
    session.execute(
        update(DeliveryRow)
        .where(DeliveryRow.endpoint_id == endpoint_id, DeliveryRow.status == PENDING)
        .values(status=HELD, updated_at=utc_now())
    )


def release_held(session: Session, endpoint_id: str) -> int:
    """Re-enabling: every held delivery becomes due now, with a fresh attempt budget."""
    result = session.execute(
        update(DeliveryRow)
        .where(DeliveryRow.endpoint_id == endpoint_id, DeliveryRow.status == HELD)
        .values(status=PENDING, attempts=0, next_attempt_at=utc_now(), updated_at=utc_now())
    )
    return int(getattr(result, "rowcount", 0) or 0)
