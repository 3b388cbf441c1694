"""Outbound webhook endpoints: registration (URL checked against the SSRF policy, no DNS), changes, the
delivery log, test pings and redelivery. Every method is synchronous (run it off the event loop)."""

from __future__ import annotations

import builtins
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, delete, or_, select
from sqlalchemy.orm import Session

from app.errors import InvalidInputError, NotFoundError
from app.storage.database import Database
from app.storage.tables.webhooks import AttemptRow, DeliveryRow, EndpointRow, MessageRow
from app.timestamps import utc_now
from app.webhooks.outbox import HELD, PENDING, PING, Outbox, hold_pending, new_id, release_held
from app.webhooks.signing import generate_secret
from app.webhooks.ssrf import DestinationPolicy, UnsafeDestinationError

MAX_LISTED_DELIVERIES = 1000
DeliveryKey = tuple[datetime, str]  # (created_at, id): where a page of the delivery log ends


@dataclass(frozen=True)
class EndpointInfo:
    id: str
    url: str
    description: str
    events: list[str]
    streams: list[str]
    enabled: bool
    disabled_at: datetime | None
    disabled_reason: str | None
    consecutive_failures: int
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class AttemptInfo:
    attempted_at: datetime
    status_code: int | None
    latency_ms: float
    error: str | None
    success: bool


@dataclass(frozen=True)
class DeliveryInfo:
    id: str
    message_id: str
    event_type: str
    status: str
    next_attempt_at: datetime | None
    created_at: datetime
    attempts: list[AttemptInfo]


@dataclass(frozen=True)
class EndpointChanges:
    url: str | None = None
    description: str | None = None
    events: Sequence[str] | None = None
    streams: Sequence[str] | None = None
    enabled: bool | None = None


class EndpointNotFoundError(NotFoundError):
    pass


def _info(row: EndpointRow) -> EndpointInfo:
    return EndpointInfo(
        id=row.id,
        url=row.url,
        description=row.description,
        events=json.loads(row.events),
        streams=json.loads(row.streams),
        enabled=row.enabled,
        disabled_at=row.disabled_at,
        disabled_reason=row.disabled_reason,
        consecutive_failures=row.consecutive_failures,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _unique(items: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(items))


class EndpointStore:
    def __init__(self, database: Database, outbox: Outbox, policy: DestinationPolicy) -> None:
        self.database = database
        self.outbox = outbox
        self.policy = policy

    def check_url(self, url: str) -> None:
        try:
            self.policy.validate_url(url)
        except UnsafeDestinationError as error:
            raise InvalidInputError(str(error), fields={"field": "url"}) from None

    def create(
        self, url: str, events: Sequence[str], streams: Sequence[str], description: str = ""
    ) -> tuple[EndpointInfo, str]:
        self.check_url(url)
        secret = generate_secret()
        now = utc_now()
        row = EndpointRow(
            id=new_id("wh")[:27],
            url=url,
            description=description,
            events=json.dumps(_unique(events)),
            streams=json.dumps(_unique(streams)),
            secret=secret,
            enabled=True,
            consecutive_failures=0,
            created_at=now,
            updated_at=now,
        )
        with self.database.session() as session:
            session.add(row)
        return _info(row), secret

    def list(self) -> list[EndpointInfo]:
        with self.database.session() as session:
            rows = session.scalars(select(EndpointRow).order_by(EndpointRow.created_at)).all()
            return [_info(row) for row in rows]

    def get(self, endpoint_id: str) -> EndpointInfo:
        with self.database.session() as session:
            return _info(_endpoint(session, endpoint_id))

    def update(self, endpoint_id: str, changes: EndpointChanges) -> EndpointInfo:
        if changes.url is not None:
            self.check_url(changes.url)
        with self.database.session() as session:
            row = _endpoint(session, endpoint_id)
            if changes.url is not None:
                row.url = changes.url
            if changes.description is not None:
                row.description = changes.description
            if changes.events is not None:
                row.events = json.dumps(_unique(changes.events))
            if changes.streams is not None:
                row.streams = json.dumps(_unique(changes.streams))
            if changes.enabled is True and not row.enabled:
                row.enabled, row.disabled_at, row.disabled_reason = True, None, None
                row.consecutive_failures = 0
                if release_held(session, row.id):
                    self.outbox.wake_after_commit(session)
            elif changes.enabled is False and row.enabled:
                row.enabled, row.disabled_at, row.disabled_reason = False, utc_now(), "disabled by an admin"
                hold_pending(session, row.id)
            row.updated_at = utc_now()
            return _info(row)

    def delete(self, endpoint_id: str) -> None:
        with self.database.session() as session:
            _endpoint(session, endpoint_id)
            ids = select(DeliveryRow.id).where(DeliveryRow.endpoint_id == endpoint_id)
            session.execute(delete(AttemptRow).where(AttemptRow.delivery_id.in_(ids)))
            session.execute(delete(DeliveryRow).where(DeliveryRow.endpoint_id == endpoint_id))
            session.execute(delete(EndpointRow).where(EndpointRow.id == endpoint_id))

    def ping(self, endpoint_id: str) -> tuple[str, str, str]:
        """Queue a `ping` event for this endpoint only; returns (message id, delivery id, status)."""
        with self.database.session() as session:
            row = _endpoint(session, endpoint_id)
            data = {"endpoint_id": row.id, "message": "test event from tswatch"}
            message_id, deliveries = self.outbox.enqueue(
                session, PING, data, endpoint_id=row.id, targets=[row]
            )
            return message_id, deliveries[0], PENDING if row.enabled else HELD

    def deliveries(
        self, endpoint_id: str, limit: int = 100, after: DeliveryKey | None = None
    ) -> builtins.list[DeliveryInfo]:
        """Newest first (then by id), each with every attempt (oldest first): those after `after` (the
        (created_at, id) of a page's last delivery; from the newest when None), at most `limit` (capped at
        MAX_LISTED_DELIVERIES + 1: a full page and the look-ahead that says whether another follows)."""
        query = (
            select(DeliveryRow, MessageRow.event_type)
            .join(MessageRow, MessageRow.id == DeliveryRow.message_id)
            .where(DeliveryRow.endpoint_id == endpoint_id)
        )
        if after is not None:
            created_at, delivery_id = after
            query = query.where(
                or_(
                    DeliveryRow.created_at < created_at,
                    and_(DeliveryRow.created_at == created_at, DeliveryRow.id > delivery_id),
                )
            )
        with self.database.session() as session:
            _endpoint(session, endpoint_id)
            rows = session.execute(
                query.order_by(DeliveryRow.created_at.desc(), DeliveryRow.id).limit(
                    min(limit, MAX_LISTED_DELIVERIES + 1)
                )
            ).all()
            attempts: dict[str, list[AttemptInfo]] = {row.id: [] for row, _ in rows}
            for attempt in session.scalars(
                select(AttemptRow)
                .where(AttemptRow.delivery_id.in_(list(attempts)))
                .order_by(AttemptRow.attempted_at, AttemptRow.id)
            ):
                attempts[attempt.delivery_id].append(
                    AttemptInfo(
                        attempt.attempted_at,
                        attempt.status_code,
                        attempt.latency_ms,
                        attempt.error,
                        attempt.success,
                    )
                )
            return [
                DeliveryInfo(
                    id=row.id,
                    message_id=row.message_id,
                    event_type=event_type,
                    status=row.status,
                    next_attempt_at=row.next_attempt_at if row.status == PENDING else None,
                    created_at=row.created_at,
                    attempts=attempts[row.id],
                )
                for row, event_type in rows
            ]

    def redeliver(self, endpoint_id: str, delivery_id: str) -> tuple[str, str]:
        """Send the same message (same webhook-id) again with a fresh attempt budget: (message id, status)."""
        with self.database.session() as session:
            endpoint = _endpoint(session, endpoint_id)
            row = session.get(DeliveryRow, delivery_id)
            if row is None or row.endpoint_id != endpoint_id:
                raise NotFoundError(f"endpoint {endpoint_id!r} has no delivery {delivery_id!r}")
            row.status = PENDING if endpoint.enabled else HELD
            row.attempts = 0
            row.next_attempt_at = utc_now()
            row.updated_at = utc_now()
            if endpoint.enabled:
                self.outbox.wake_after_commit(session)
            return row.message_id, row.status


def _endpoint(session: Session, endpoint_id: str) -> EndpointRow:
    row = session.get(EndpointRow, endpoint_id)
    if row is None:
        raise EndpointNotFoundError(f"no webhook endpoint {endpoint_id!r}")
    return row
