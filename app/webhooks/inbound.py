"""Inbound webhooks: the secrets senders sign with, signature verification, and idempotency by
(signer, webhook-id).

Idempotency: a signed message is keyed by the id of the inbound secret that verified it and its webhook-id
(`MessageKey`), so senders with different secrets that happen to use the same webhook-id never get each
other's answers. The key is claimed (a row in `webhook_inbound_messages_v2`, whose primary key is the unique
constraint) before the points are processed, and marked done with the response IN the transaction that stores
the points. A duplicate that finds it done gets the stored response; one that finds it still processing waits
for it (or takes it over when the claim is older than `STALE_CLAIM`, i.e. its process died). A request that
fails releases its claim: nothing was stored, so a retry with the same id may succeed.

Retention: a signature is accepted only while its timestamp is within `DEFAULT_TOLERANCE_SECONDS` (5 min) of
the server's clock, so every delivery of one message arrives within `REPLAY_WINDOW` (10 min) of the first.
Stored answers are deleted `RETENTION` (1 h: that window plus a margin) after their first claim, by `prune`,
which a claim runs at most every `PRUNE_INTERVAL_SECONDS` per process, in short bounded batches. A repeat
after that could not be replayed anyway: its timestamp is outside the tolerance, so it is refused (401).
"""

from __future__ import annotations

import asyncio
import builtins
import logging
import secrets as _secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, delete, select, tuple_, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from app.concurrency import run_blocking
from app.errors import NotFoundError, UnavailableError
from app.storage.database import Database
from app.storage.tables.webhooks import InboundMessageRow, InboundSecretRow
from app.timestamps import utc_now
from app.webhooks.signing import (
    DEFAULT_TOLERANCE_SECONDS,
    HEADER_ID,
    HEADER_SIGNATURE,
    HEADER_TIMESTAMP,
    SignatureError,
    generate_secret,
    verify,
)

logger = logging.getLogger("tswatch.webhooks")

STALE_CLAIM = timedelta(seconds=120)
WAIT_POLL_SECONDS = 0.05
WAIT_LIMIT_SECONDS = 60.0
WEBHOOK_HEADERS = (HEADER_ID, HEADER_TIMESTAMP, HEADER_SIGNATURE)
# Every delivery of one signed message arrives within this of the first (timestamp tolerance on either side).
REPLAY_WINDOW = 2 * timedelta(seconds=DEFAULT_TOLERANCE_SECONDS)
# Stored answers are deleted this long after their first claim: REPLAY_WINDOW plus a margin.
RETENTION = timedelta(hours=1)
PRUNE_INTERVAL_SECONDS = 60.0  # a claim prunes at most this often (per process)
PRUNE_BATCH = 500  # rows per DELETE transaction
PRUNE_MAX_BATCHES = 20  # per prune, so one claim never waits on an unbounded cleanup


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
class MessageKey:
    """The idempotency key of a signed inbound webhook."""

    signer: str  # the id of the inbound secret whose signature verified
    msg_id: str  # the webhook-id header


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

    def active_secrets(self) -> builtins.list[tuple[str, str]]:
        """(id, secret) of every active secret, oldest first."""
        with self.database.session() as session:
            query = (
                select(InboundSecretRow.id, InboundSecretRow.secret)
                .where(InboundSecretRow.revoked_at.is_(None))
                .order_by(InboundSecretRow.created_at, InboundSecretRow.id)
            )
            return [(secret_id, secret) for secret_id, secret in session.execute(query)]


def has_webhook_headers(headers: Mapping[str, str]) -> bool:
    return any(headers.get(name) for name in WEBHOOK_HEADERS)


def _rejected(reason: object) -> InboundSignatureError:
    return InboundSignatureError(f"webhook signature rejected: {reason}")


def verify_inbound(active: Sequence[tuple[str, str]], headers: Mapping[str, str], body: bytes) -> MessageKey:
    """The verified message's key: its signer is the first of the active (id, secret) pairs, oldest first,
    whose signature matches. Raises InboundSignatureError (any failure, including no secret configured)."""
    if not active:
        raise InboundSignatureError(
            "no active inbound webhook secret; create one with `tswatch hooks secret create`"
        )
    for secret_id, secret in active:
        try:
            return MessageKey(secret_id, _storable(verify([secret], headers, body)))
        except SignatureError as error:
            if error.code != "no_match":  # headers or timestamp: the same for every secret
                raise _rejected(error) from None
        except ValueError as error:  # a malformed stored secret
            raise _rejected(error) from None
    raise _rejected(f"no matching signature (checked against {len(active)} active secret(s))")


def _storable(msg_id: str) -> str:
    """The verified webhook-id, if it fits the idempotency table (else a rejection, not a database error)."""
    if len(msg_id) > InboundMessageRow.MSG_ID_LENGTH:
        raise _rejected(f"webhook-id is longer than {InboundMessageRow.MSG_ID_LENGTH} characters")
    return msg_id


def _is(key: MessageKey) -> ColumnElement[bool]:
    return and_(InboundMessageRow.signer == key.signer, InboundMessageRow.msg_id == key.msg_id)


class IdempotencyStore:
    def __init__(self, database: Database) -> None:
        self.database = database
        self._next_prune = float("-inf")  # time.monotonic() from which the next claim prunes

    def try_claim(self, key: MessageKey) -> StoredResponse | bool | None:
        """True when claimed now; a StoredResponse when done before; None when another request holds it."""
        try:
            with self.database.session() as session:
                now = utc_now()
                session.add(
                    InboundMessageRow(
                        signer=key.signer,
                        msg_id=key.msg_id,
                        state="processing",
                        created_at=now,
                        claimed_at=now,
                    )
                )
            return True
        except IntegrityError:
            pass
        with self.database.session() as session:
            row = session.get(InboundMessageRow, (key.signer, key.msg_id))
            if row is None:  # released (or pruned) meanwhile: try again
                return self.try_claim(key)
            if row.state == "done":
                return StoredResponse(row.response_status or 200, row.response_body or "")
            if utc_now() - row.claimed_at > STALE_CLAIM:  # the process holding it died: take it over
                taken = session.execute(
                    update(InboundMessageRow)
                    .where(_is(key), InboundMessageRow.claimed_at == row.claimed_at)
                    .values(claimed_at=utc_now())
                )
                return bool(getattr(taken, "rowcount", 0)) or None
            return None

    def release(self, key: MessageKey) -> None:
        with self.database.session() as session:
            session.execute(
                delete(InboundMessageRow).where(_is(key), InboundMessageRow.state == "processing")
            )

    @staticmethod
    def complete(session: Session, key: MessageKey, status: int, body: str) -> None:
        """Mark done with the response, inside the transaction that stores the points."""
        row = session.get(InboundMessageRow, (key.signer, key.msg_id))
        if row is None:  # pruned while processing (a claim older than RETENTION): store it afresh
            now = utc_now()
            row = InboundMessageRow(signer=key.signer, msg_id=key.msg_id, created_at=now, claimed_at=now)
            session.add(row)
        row.state, row.response_status, row.response_body = "done", status, body
        row.completed_at = utc_now()

    def prune(self, now: datetime | None = None) -> int:
        """Delete the messages first claimed more than RETENTION before `now`, in at most PRUNE_MAX_BATCHES
        transactions of PRUNE_BATCH rows; the number deleted."""
        cutoff = (utc_now() if now is None else now) - RETENTION
        expired = (
            select(InboundMessageRow.signer, InboundMessageRow.msg_id)
            .where(InboundMessageRow.created_at < cutoff)
            .limit(PRUNE_BATCH)
        )
        statement = (
            delete(InboundMessageRow)
            .where(tuple_(InboundMessageRow.signer, InboundMessageRow.msg_id).in_(expired))
            .execution_options(synchronize_session=False)
        )
        pruned = 0
        for _ in range(PRUNE_MAX_BATCHES):
            with self.database.session() as session:
                deleted = int(getattr(session.execute(statement), "rowcount", 0))
            pruned += deleted
            if deleted < PRUNE_BATCH:
                break
        return pruned

    async def _prune_if_due(self) -> None:
        """Prune at most every PRUNE_INTERVAL_SECONDS; a failure is logged, never the request's."""
        started = time.monotonic()
        if started < self._next_prune:
            return
        self._next_prune = started + PRUNE_INTERVAL_SECONDS
        try:
            pruned = await run_blocking(self.prune)
        except SQLAlchemyError:
            logger.warning("pruning stored inbound webhook answers failed", exc_info=True)
            return
        if pruned:
            logger.info("pruned %d stored inbound webhook answer(s) older than %s", pruned, RETENTION)

    async def claim(self, key: MessageKey) -> StoredResponse | None:
        """Wait until `key` is ours (None) or has a stored response (returned)."""
        await self._prune_if_due()
        deadline = time.monotonic() + WAIT_LIMIT_SECONDS
        while True:
            outcome = await run_blocking(self.try_claim, key)
            if outcome is True:
                return None
            if isinstance(outcome, StoredResponse):
                return outcome
            if time.monotonic() > deadline:
                raise UnavailableError(
                    f"webhook {key.msg_id!r} is still being processed by another request; retry later"
                )
            await asyncio.sleep(WAIT_POLL_SECONDS)
