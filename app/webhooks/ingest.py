"""Inbound points: signature check, idempotency by (signer, webhook-id), and one multi-stream append in one
transaction.

A monitoring system pushes points for many streams in one request (`POST /v1/hooks/points`). The caller first
verifies the request (`verify`: a Standard Webhooks signature over the raw body, before the body is parsed, so a
changed byte is a 401, never a 422), then hands over the parsed points (`ingest`). A signed request is idempotent
by its `MessageKey` (the verifying secret's id and the webhook-id): the key is claimed before the points are
processed, and the answer is stored with it IN the transaction that stores the points, so a repeat from the same
signer gets the stored answer and is processed once. A request that fails releases its claim: nothing was
stored, so a retry with the same id may succeed. A request authenticated by an API key has no key and is not
idempotent.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from app.concurrency import run_blocking
from app.errors import TswatchError
from app.streams.service import StagedAppend, StreamService
from app.webhooks.inbound import (
    IdempotencyStore,
    InboundSecretStore,
    InboundSignatureError,
    MessageKey,
    verify_inbound,
)

# (stream id, naive UTC timestamp, value), in request order
InboundPoint = tuple[str, datetime, float | None]
# The answer to store and send, built from the staged appends inside the transaction.
RenderAnswer = Callable[[list[StagedAppend]], str]


class SignatureRejectedError(TswatchError):
    status = 401
    title = "Invalid webhook signature"
    slug = "invalid-signature"


@dataclass(frozen=True)
class IngestResult:
    status: int
    body: str  # the answer (JSON), as stored with the message key
    replayed: bool  # True: an earlier request with this signer and webhook-id was answered with this body


class PointIngest:
    def __init__(
        self, streams: StreamService, secrets: InboundSecretStore, idempotency: IdempotencyStore
    ) -> None:
        self.streams = streams
        self.secrets = secrets
        self.idempotency = idempotency

    async def verify(self, headers: Mapping[str, str], body: bytes) -> MessageKey:
        """The key (signer, webhook-id) of a correctly signed request; SignatureRejectedError (401) otherwise."""
        active = await run_blocking(self.secrets.active_secrets)
        try:
            return verify_inbound(active, headers, body)
        except InboundSignatureError as error:
            raise SignatureRejectedError(str(error)) from None

    async def ingest(
        self,
        points: Sequence[InboundPoint],
        message: MessageKey | None,
        render: RenderAnswer,
        alerts: bool = True,
    ) -> IngestResult:
        """Append `points` to their streams, all or none; `message` (signed requests) makes it idempotent;
        `alerts=False` sends no webhooks for the alarms they cause."""
        if message is not None:
            stored = await self.idempotency.claim(message)
            if stored is not None:
                return IngestResult(stored.status, stored.body, replayed=True)
        answer: list[str] = []

        def finish(session: Session, staged: list[StagedAppend]) -> None:
            answer.append(render(staged))
            if message is not None:
                self.idempotency.complete(session, message, 200, answer[0])

        try:
            await self.streams.append_many(group_by_stream(points), in_transaction=finish, alerts=alerts)
        except BaseException:
            if message is not None:  # nothing was stored: a retry with this id may be processed
                await asyncio.shield(run_blocking(self.idempotency.release, message))
            raise
        return IngestResult(200, answer[0], replayed=False)


def group_by_stream(points: Sequence[InboundPoint]) -> list[tuple[str, list[tuple[datetime, float | None]]]]:
    """Per stream (in order of first appearance) its points, in request order."""
    groups: dict[str, list[tuple[datetime, float | None]]] = defaultdict(list)
    for stream, timestamp, value in points:
        groups[stream].append((timestamp, value))
    return list(groups.items())
