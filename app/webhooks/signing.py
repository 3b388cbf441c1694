"""Standard Webhooks signing (https://www.standardwebhooks.com).

Signature: ``v1,`` + base64(HMAC-SHA256(key, f"{id}.{timestamp}.{body}")), secrets are
``whsec_`` + base64(key). The HMAC is computed over the raw body bytes; interoperability
with the reference ``standardwebhooks`` library is covered by tests. Its own ``verify`` is
not used because it reads the wall clock, has a fixed tolerance, reports every failure
with one generic exception, and raises ValueError/binascii.Error on malformed signatures.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import math
import secrets as _secrets
import time
from collections.abc import Mapping, Sequence
from typing import Literal

SECRET_PREFIX = "whsec_"
HEADER_ID = "webhook-id"
HEADER_TIMESTAMP = "webhook-timestamp"
HEADER_SIGNATURE = "webhook-signature"
DEFAULT_TOLERANCE_SECONDS = 300
_SECRET_BYTES = 32

SignatureErrorCode = Literal[
    "missing_header", "invalid_timestamp", "timestamp_too_old", "timestamp_too_new", "no_match"
]


class SignatureError(ValueError):
    """Verification failed; ``code`` is machine-readable, the message says why."""

    def __init__(self, code: SignatureErrorCode, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def generate_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(_secrets.token_bytes(_SECRET_BYTES)).decode("ascii")


def _secret_key(secret: str) -> bytes:
    raw = secret.removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(raw + "=" * (-len(raw) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("webhook secret must be 'whsec_' followed by base64") from None
    if not key:
        raise ValueError("webhook secret is empty")
    return key


def _check_msg_id(msg_id: str) -> None:
    if not msg_id or not msg_id.isascii() or not msg_id.isprintable() or " " in msg_id:
        raise ValueError(f"message id must be non-empty printable ASCII without spaces: {msg_id!r}")


def _digest(key: bytes, msg_id: str, timestamp: str, body: bytes) -> bytes:
    return hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """Return the ``v1,<base64>`` signature."""
    _check_msg_id(msg_id)
    digest = _digest(_secret_key(secret), msg_id, str(int(timestamp)), body)
    return "v1," + base64.b64encode(digest).decode("ascii")


def signed_headers(secret: str, msg_id: str, body: bytes, now: float | None = None) -> dict[str, str]:
    timestamp = math.floor(time.time() if now is None else now)
    return {
        HEADER_ID: msg_id,
        HEADER_TIMESTAMP: str(timestamp),
        HEADER_SIGNATURE: sign(secret, msg_id, timestamp, body),
    }


def _required_headers(headers: Mapping[str, str]) -> tuple[str, str, str]:
    lowered = {name.lower(): value for name, value in headers.items()}
    names = (HEADER_ID, HEADER_TIMESTAMP, HEADER_SIGNATURE)
    missing = [name for name in names if not lowered.get(name)]
    if missing:
        raise SignatureError("missing_header", f"missing header(s): {', '.join(missing)}")
    return lowered[HEADER_ID], lowered[HEADER_TIMESTAMP], lowered[HEADER_SIGNATURE]


def _check_timestamp(raw: str, now: float, tolerance_seconds: int) -> None:
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 12):
        raise SignatureError("invalid_timestamp", f"{HEADER_TIMESTAMP} is not integer seconds: {raw!r}")
    age = now - int(raw)
    if age > tolerance_seconds:
        raise SignatureError(
            "timestamp_too_old",
            f"timestamp too old: {age:.0f} s in the past (tolerance {tolerance_seconds} s)",
        )
    if -age > tolerance_seconds:
        raise SignatureError(
            "timestamp_too_new",
            f"timestamp too new: {-age:.0f} s in the future (tolerance {tolerance_seconds} s)",
        )


def _v1_signatures(header: str) -> list[bytes]:
    """Decoded ``v1`` entries; other versions and malformed entries are ignored."""
    found = []
    for token in header.split():
        version, _, encoded = token.partition(",")
        if version != "v1":
            continue
        try:
            found.append(base64.b64decode(encoded, validate=True))
        except (binascii.Error, ValueError):
            continue
    return found


def verify(
    secrets: Sequence[str],
    headers: Mapping[str, str],
    body: bytes,
    now: float | None = None,
    tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS,
) -> str:
    """Return the verified webhook id; accepts any active secret (rotation) and any of the
    space-separated signatures. Raises SignatureError, or ValueError for bad secrets."""
    if isinstance(secrets, str):
        raise TypeError("secrets must be a sequence of secrets, not a single string")
    keys = [_secret_key(secret) for secret in secrets]
    if not keys:
        raise ValueError("at least one webhook secret is required")
    msg_id, raw_timestamp, signature_header = _required_headers(headers)
    _check_timestamp(raw_timestamp, time.time() if now is None else now, tolerance_seconds)
    expected = [_digest(key, msg_id, raw_timestamp, body) for key in keys]
    candidates = _v1_signatures(signature_header)
    if any(hmac.compare_digest(exp, cand) for exp in expected for cand in candidates):
        return msg_id
    raise SignatureError(
        "no_match",
        f"no matching signature ({len(candidates)} v1 signature(s) checked against {len(keys)} secret(s))",
    )
