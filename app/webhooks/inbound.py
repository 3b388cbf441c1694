"""Inbound webhooks: the secrets senders sign with, signature verification, and idempotency by webhook-id.

Idempotency: a webhook-id is claimed (a row in `webhook_inbound_messages`, whose primary key is the unique
constraint) before the points are processed, and marked done with the response IN the transaction that stores
the points. A duplicate that finds the id done gets the stored response; one that finds it still processing
waits for it (or takes it over when the claim is older than `STALE_CLAIM`, i.e. its process died). A request
that fails releases its claim: nothing was stored, so a retry with the same id may succeed.
"""

from __future__ import annotations

import asyncio
import builtins
import secrets as _secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.concurrency import run_blocking
from app.errors import NotFoundError, UnavailableError
from app.storage.database import Database
from app.storage.tables.webhooks import InboundMessageRow, InboundSecretRow
from app.timestamps import utc_now
from app.webhooks.signing import HEADER_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP, generate_secret, verify

STALE_CLAIM = timedelta(seconds=120)
WAIT_POLL_SECONDS = 0.05
WAIT_LIMIT_SECONDS = 60.0
WEBHOOK_HEADERS = (HEADER_ID, HEADER_TIMESTAMP, HEADER_SIGNATURE)


class InboundSignatureError(Exception):
    """Signature verification failed (mapped to 401 by the route)."""


class SecretNotFoundError(NotFoundError):
    pass


@dataclass(frozen=True)
class SecretInfo:
    id: str
    name: str
    created_at: datetime
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


@dataclass(frozen=True)
class StoredResponse:
    status: int
    body: str


def _info(row: InboundSecretRow) -> SecretInfo:
    return SecretInfo(row.id, row.name, row.created_at, row.revoked_at)


class InboundSecretStore:
    def __init__(self, database: Database) -> None:
        self.database = database

    def create(self, name: str = "") -> tuple[SecretInfo, str]:
        secret = generate_secret()
        with self.database.session() as session:
            row = InboundSecretRow(id="isec_" + _secrets.token_hex(6), name=name, secret=secret)
            session.add(row)
            session.flush()
            return _info(row), secret

    def list(self, include_revoked: bool = False) -> list[SecretInfo]:
        with self.database.session() as session:
            query = select(InboundSecretRow).order_by(InboundSecretRow.created_at)
            if not include_revoked:
                query = query.where(InboundSecretRow.revoked_at.is_(None))
            return [_info(row) for row in session.scalars(query)]

    def revoke(self, secret_id: str) -> SecretInfo:
        with self.database.session() as session:
            row = session.get(InboundSecretRow, secret_id)
            if row is None:
                raise SecretNotFoundError(f"no inbound secret {secret_id!r}")
            if row.revoked_at is None:
                row.revoked_at = utc_now()
            return _info(row)

    def active_secrets(self) -> builtins.list[str]:
        with self.database.session() as session:
            query = select(InboundSecretRow.secret).where(InboundSecretRow.revoked_at.is_(None))
            return list(session.scalars(query))


def has_webhook_headers(headers: Mapping[str, str]) -> bool:
    return any(headers.get(name) for name in WEBHOOK_HEADERS)


def verify_inbound(active: list[str], headers: Mapping[str, str], body: bytes) -> str:
    """The verified webhook-id; raises InboundSignatureError (any failure, including no secret configured)."""
    if not active:
        raise InboundSignatureError(
            "no active inbound webhook secret; create one with `tswatch hooks secret create`"
        )
    try:
        return verify(active, headers, body)
    except ValueError as error:  # SignatureError is a ValueError too
        raise InboundSignatureError(f"webhook signature rejected: {error}") from None


class IdempotencyStore:
    def __init__(self, database: Database) -> None:
        self.database = database

    def try_claim(self, msg_id: str) -> StoredResponse | bool | None:
        """True when claimed now; a StoredResponse when done before; None when another request holds it."""
        try:
            with self.database.session() as session:
                session.add(InboundMessageRow(msg_id=msg_id, state="processing", claimed_at=utc_now()))
            return True
        except IntegrityError:
            pass
        with self.database.session() as session:
            row = session.get(InboundMessageRow, msg_id)
            if row is None:  # released meanwhile: try again
                return self.try_claim(msg_id)
            if row.state == "done":
                return StoredResponse(row.response_status or 200, row.response_body or "")
            if utc_now() - row.claimed_at > STALE_CLAIM:  # the process holding it died: take it over
                taken = session.execute(
                    update(InboundMessageRow)
                    .where(InboundMessageRow.msg_id == msg_id, InboundMessageRow.claimed_at == row.claimed_at)
                    .values(claimed_at=utc_now())
                )
                return bool(getattr(taken, "rowcount", 0)) or None
            return None

    def release(self, msg_id: str) -> None:
        with self.database.session() as session:
            session.execute(
                delete(InboundMessageRow).where(
                    InboundMessageRow.msg_id == msg_id, InboundMessageRow.state == "processing"
                )
            )

    @staticmethod
    def complete(session: Session, msg_id: str, status: int, body: str) -> None:
        """Mark done with the response, inside the transaction that stores the points."""
        row = session.get(InboundMessageRow, msg_id)
        if row is None:
            row = InboundMessageRow(msg_id=msg_id, claimed_at=utc_now())
            session.add(row)
        row.state, row.response_status, row.response_body = "done", status, body
        row.completed_at = utc_now()

    async def claim(self, msg_id: str) -> StoredResponse | None:
        """Wait until `msg_id` is ours (None) or has a stored response (returned)."""
        deadline = time.monotonic() + WAIT_LIMIT_SECONDS
        while True:
            outcome = await run_blocking(self.try_claim, msg_id)
            if outcome is True:
                return None
            if isinstance(outcome, StoredResponse):
                return outcome
            if time.monotonic() > deadline:
                raise UnavailableError(
                    f"webhook {msg_id!r} is still being processed by another request; retry later"
                )
            await asyncio.sleep(WAIT_POLL_SECONDS)
