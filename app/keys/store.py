"""API keys, stored hashed in the database.

A key looks like `tsw_<key_id>_<43 random url-safe chars>`. Only its SHA-256 is stored; the plaintext is shown
once at creation. A fast unsalted hash is the right tool here (unlike for passwords): the secret part carries
256 bits of entropy, so neither brute force nor precomputed tables are feasible, and a deterministic hash lets
authentication be a single indexed lookup.

Lookups are cached in memory for a short TTL so serving a request costs no database round trip, while a key
revoked or created by another process (the CLI) still takes effect within seconds.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from app.errors import NotFoundError
from app.keys.cache import MISS, Miss, TtlCache
from app.keys.roles import Role
from app.storage.database import Database
from app.storage.tables.keys import ApiKeyRow
from app.timestamps import utc_now

logger = logging.getLogger(__name__)

KEY_PREFIX: Final = "tsw"
BOOTSTRAP_NAME: Final = "bootstrap (TSWATCH_ADMIN_KEY)"
MIN_BOOTSTRAP_LENGTH: Final = 16
MAX_KEY_LENGTH: Final = 512
LAST_USED_RESOLUTION: Final = timedelta(minutes=1)


@dataclass(frozen=True)
class KeyInfo:
    key_id: str
    name: str
    role: Role
    created_at: datetime
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    @classmethod
    def from_row(cls, row: ApiKeyRow) -> KeyInfo:
        return cls(row.key_id, row.name, Role(row.role), row.created_at, row.revoked_at, row.last_used_at)


class KeyNotFoundError(NotFoundError):
    title = "API key not found"
    slug = "key-not-found"


def hash_key(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode("utf-8")).hexdigest()


def generate_key() -> tuple[str, str]:
    """A fresh (key_id, plaintext) pair."""
    key_id = secrets.token_hex(4)
    return key_id, f"{KEY_PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"


class KeyStore:
    """Creates, lists, revokes and checks API keys. Thread-safe; share one per process."""

    def __init__(self, database: Database, cache_ttl: float = 2.0) -> None:
        self.database = database
        self._auth_cache: TtlCache[KeyInfo | None] = TtlCache(cache_ttl)
        self._active_cache: TtlCache[bool] = TtlCache(cache_ttl)

    def create(self, role: Role | str, name: str = "") -> tuple[KeyInfo, str]:
        """Returns the new key's info and its plaintext, which is not stored anywhere."""
        role = Role(role)
        for _attempt in range(5):
            key_id, plaintext = generate_key()
            try:
                info = self._insert(key_id, name, role, hash_key(plaintext))
            except IntegrityError:  # key_id collision: 32 random bits, so only ever a retry or two
                continue
            self.invalidate()
            return info, plaintext
        raise RuntimeError("could not allocate a unique key id")

    def list(self, include_revoked: bool = False) -> list[KeyInfo]:
        query = select(ApiKeyRow).order_by(ApiKeyRow.created_at, ApiKeyRow.id)
        if not include_revoked:
            query = query.where(ApiKeyRow.revoked_at.is_(None))
        with self.database.session() as session:
            return [KeyInfo.from_row(row) for row in session.scalars(query)]

    def revoke(self, key_id: str) -> KeyInfo:
        """Revokes the key (idempotent) and returns it; other processes notice within the cache TTL."""
        with self.database.session() as session:
            row = session.scalars(select(ApiKeyRow).where(ApiKeyRow.key_id == key_id)).one_or_none()
            if row is None:
                raise KeyNotFoundError(f"no API key with id {key_id!r}")
            if row.revoked_at is None:
                row.revoked_at = utc_now()
            info = KeyInfo.from_row(row)
        self.invalidate()
        return info

    def authenticate(self, plaintext: str) -> KeyInfo | None:
        """The active key matching `plaintext`, or None for unknown and revoked keys."""
        if not plaintext or len(plaintext) > MAX_KEY_LENGTH:
            return None
        digest = hash_key(plaintext)
        cached = self._auth_cache.get(digest)
        if cached is not MISS:
            return cached
        info = self._lookup(digest)
        self._auth_cache.put(digest, info)
        return info

    def cached_authenticate(self, plaintext: str) -> KeyInfo | Miss | None:
        """Like `authenticate` but never touches the database: MISS when the answer is not cached."""
        if not plaintext or len(plaintext) > MAX_KEY_LENGTH:
            return None
        return self._auth_cache.get(hash_key(plaintext))

    def has_active_keys(self) -> bool:
        cached = self._active_cache.get("")
        if cached is not MISS:
            return cached
        query = select(ApiKeyRow.id).where(ApiKeyRow.revoked_at.is_(None)).limit(1)
        with self.database.session() as session:
            active = session.scalars(query).first() is not None
        self._active_cache.put("", active)
        return active

    def cached_has_active_keys(self) -> bool | Miss:
        return self._active_cache.get("")

    def ensure_bootstrap(self, plaintext_admin_key: str) -> None:
        """Registers the configured admin key once; a later revocation of it is respected, not undone."""
        if len(plaintext_admin_key) < MIN_BOOTSTRAP_LENGTH:
            raise ValueError(f"the admin key must be at least {MIN_BOOTSTRAP_LENGTH} characters long")
        if len(plaintext_admin_key) > MAX_KEY_LENGTH:
            raise ValueError(f"the admin key must be at most {MAX_KEY_LENGTH} characters long")
        digest = hash_key(plaintext_admin_key)
        existing = self._row_by_hash(digest)
        if existing is not None:
            if existing.revoked_at is not None:
                logger.warning("TSWATCH_ADMIN_KEY matches revoked key %s; it stays revoked", existing.key_id)
            return
        for key_id in (digest[:8], secrets.token_hex(4)):
            try:
                self._insert(key_id, BOOTSTRAP_NAME, Role.ADMIN, digest)
            except IntegrityError:
                if self._row_by_hash(digest) is not None:  # another process bootstrapped concurrently
                    break
                continue
            break
        self.invalidate()

    def invalidate(self) -> None:
        """Drops cached answers, so changes made through this store apply at once in this process."""
        self._auth_cache.clear()
        self._active_cache.clear()

    def _insert(self, key_id: str, name: str, role: Role, digest: str) -> KeyInfo:
        with self.database.session() as session:
            row = ApiKeyRow(
                key_id=key_id, name=name, role=role.value, key_sha256=digest, created_at=utc_now()
            )
            session.add(row)
            session.flush()
            return KeyInfo.from_row(row)

    def _row_by_hash(self, digest: str) -> ApiKeyRow | None:
        with self.database.session() as session:
            return session.scalars(select(ApiKeyRow).where(ApiKeyRow.key_sha256 == digest)).one_or_none()

    def _lookup(self, digest: str) -> KeyInfo | None:
        row = self._row_by_hash(digest)
        if row is None or row.revoked_at is not None:
            return None
        info = KeyInfo.from_row(row)
        self._touch(row)
        return info

    def _touch(self, row: ApiKeyRow) -> None:
        """Best effort, at most once a minute per key: a busy database must not fail authentication."""
        now = utc_now()
        if row.last_used_at is not None and now - row.last_used_at < LAST_USED_RESOLUTION:
            return
        try:
            with self.database.session() as session:
                session.execute(update(ApiKeyRow).where(ApiKeyRow.id == row.id).values(last_used_at=now))
        except SQLAlchemyError as error:
            logger.debug("could not record the use of API key %s: %s", row.key_id, error)
