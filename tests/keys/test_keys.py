import hashlib
import re
import time

import pytest
from sqlalchemy import select

from app.errors import NotFoundError
from app.keys.cache import MISS
from app.keys.roles import Role
from app.keys.store import BOOTSTRAP_NAME, KeyNotFoundError, KeyStore
from app.storage.tables.keys import ApiKeyRow

KEY_PATTERN = re.compile(r"^tsw_([0-9a-f]{8})_[A-Za-z0-9_-]{43}$")


@pytest.fixture
def store(database):
    return KeyStore(database)


def test_roles_are_ordered_read_write_admin():
    assert sorted([Role.ADMIN, Role.READ, Role.WRITE]) == [Role.READ, Role.WRITE, Role.ADMIN]
    assert Role.READ < Role.WRITE < Role.ADMIN
    assert Role.ADMIN >= Role.ADMIN > Role.READ
    assert Role.ADMIN.allows(Role.READ)
    assert Role.WRITE.allows("write")
    assert not Role.READ.allows(Role.WRITE)
    assert not Role.WRITE.allows(Role.ADMIN)


def test_create_returns_a_well_formed_key_that_is_stored_only_hashed(store, database):
    info, plaintext = store.create(Role.WRITE, name="ci")
    match = KEY_PATTERN.match(plaintext)
    assert match is not None
    assert match.group(1) == info.key_id
    assert (info.name, info.role, info.revoked_at) == ("ci", Role.WRITE, None)
    with database.session() as session:
        row = session.scalars(select(ApiKeyRow)).one()
        stored = [str(getattr(row, column.key)) for column in ApiKeyRow.__table__.columns]
    assert row.key_sha256 == hashlib.sha256(plaintext.encode()).hexdigest()
    assert not any(plaintext in value or plaintext[-43:] in value for value in stored)


def test_authenticate_accepts_valid_keys_and_rejects_others(store):
    info, plaintext = store.create("read")
    assert store.authenticate(plaintext) == info
    assert store.authenticate(plaintext + "x") is None
    assert store.authenticate("") is None
    assert store.authenticate("x" * 10_000) is None


def test_authenticate_records_last_use(store):
    _info, plaintext = store.create(Role.READ)
    store.authenticate(plaintext)
    [listed] = store.list()
    assert listed.last_used_at is not None


def test_revoke_rejects_the_key_and_hides_it_from_the_default_listing(store):
    keep, _ = store.create(Role.READ, "keep")
    gone, plaintext = store.create(Role.ADMIN, "gone")
    assert store.authenticate(plaintext) is not None
    revoked = store.revoke(gone.key_id)
    assert revoked.revoked_at is not None
    assert store.authenticate(plaintext) is None
    assert [info.key_id for info in store.list()] == [keep.key_id]
    assert [info.key_id for info in store.list(include_revoked=True)] == [keep.key_id, gone.key_id]
    assert store.revoke(gone.key_id).revoked_at == revoked.revoked_at


def test_revoking_an_unknown_key_is_a_not_found_error(store):
    with pytest.raises(KeyNotFoundError) as caught:
        store.revoke("deadbeef")
    assert isinstance(caught.value, NotFoundError)
    assert caught.value.status == 404


def test_has_active_keys_follows_creation_and_revocation(store):
    assert not store.has_active_keys()
    info, _ = store.create(Role.READ)
    assert store.has_active_keys()
    store.revoke(info.key_id)
    assert not store.has_active_keys()


def test_ensure_bootstrap_is_idempotent(store):
    secret = "a-long-enough-admin-secret"
    store.ensure_bootstrap(secret)
    store.ensure_bootstrap(secret)
    [info] = store.list(include_revoked=True)
    assert (info.role, info.name) == (Role.ADMIN, BOOTSTRAP_NAME)
    assert store.authenticate(secret) == info


def test_ensure_bootstrap_does_not_undo_a_revocation(store):
    secret = "a-long-enough-admin-secret"
    store.ensure_bootstrap(secret)
    [info] = store.list()
    store.revoke(info.key_id)
    store.ensure_bootstrap(secret)
    assert store.authenticate(secret) is None
    assert len(store.list(include_revoked=True)) == 1


def test_ensure_bootstrap_refuses_short_keys(store):
    with pytest.raises(ValueError, match="16"):
        store.ensure_bootstrap("too-short")
    assert not store.has_active_keys()


def test_answers_are_cached_until_the_ttl_expires(database):
    server = KeyStore(database, cache_ttl=0.2)
    other_process = KeyStore(database)
    info, plaintext = other_process.create(Role.READ)
    assert server.cached_authenticate(plaintext) is MISS
    assert server.authenticate(plaintext) == info
    assert server.cached_authenticate(plaintext) == info
    assert server.has_active_keys()

    other_process.revoke(info.key_id)
    assert server.authenticate(plaintext) == info, "still cached right after a foreign revocation"
    time.sleep(0.25)
    assert server.cached_authenticate(plaintext) is MISS
    assert server.authenticate(plaintext) is None
    assert not server.has_active_keys()


def test_keys_created_elsewhere_are_seen_after_the_ttl(database):
    server = KeyStore(database, cache_ttl=0.1)
    assert not server.has_active_keys()
    _, plaintext = KeyStore(database).create(Role.ADMIN)
    assert server.authenticate(plaintext) is not None
    time.sleep(0.15)
    assert server.has_active_keys()
