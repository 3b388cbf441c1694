"""Model artifacts stored in the database: a registry on another host (another, empty models folder) loads every
version from the database alone, verified; tampered rows are refused naming the file; versions registered before
keep working and are copied in; publishers on several hosts get distinct numbers. On SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from sqlalchemy import delete, func, insert, select, text, update

from app.registry.artifacts import (
    MANIFEST_FILE,
    WEIGHTS_FILE,
    ArtifactIntegrityError,
    read_manifest,
    read_weights,
)
from app.registry.gc import collect, collect_at_start
from app.registry.manifest import Manifest
from app.registry.store import Registry, VersionInfo
from app.storage.database import Database
from app.storage.schema import create_schema
from app.storage.tables.registry import AliasRow, ArtifactRow, VersionRow
from tests.postgres import PostgresCluster

NAME = "shared"
Artifact = tuple[dict[str, torch.Tensor], Manifest]
OpenHost = Callable[[str], Registry]


@pytest.fixture(params=["sqlite", "postgresql"])
def shared_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """One database for every registry of the test: a SQLite file outside any models folder, or PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'shared.db'}"
        return
    cluster: PostgresCluster = request.getfixturevalue("postgres_cluster")
    name = cluster.create_database()
    yield cluster.url(name)
    cluster.drop_database(name)


@pytest.fixture
def open_host(shared_url: str, tmp_path: Path) -> Iterator[OpenHost]:
    """`open_host("x")`: a registry over the shared database with its own (empty) models folder, as on a host
    of its own; disposed after the test."""
    opened: list[Registry] = []

    def open_host(host: str) -> Registry:
        database = Database(shared_url)
        create_schema(database)
        registry = Registry(database, tmp_path / f"models-{host}")
        opened.append(registry)
        return registry

    yield open_host
    for registry in opened:
        registry.database.dispose()


@pytest.fixture(scope="module")
def artifact(tiny_models_dir: Path) -> Artifact:
    source = tiny_models_dir / "tiny" / "1"
    manifest = read_manifest(source)
    return read_weights(source, manifest), manifest


def publish(registry: Registry, artifact: Artifact, alias: str | None = None) -> VersionInfo:
    tensors, manifest = artifact
    return registry.publish(NAME, tensors, manifest, alias=alias, force=True)  # the tiny model loses to naive


def forecast(registry: Registry, version: int) -> np.ndarray:
    loaded = registry.load(registry.get_version(NAME, version))
    windows = np.linspace(8.0, 12.0, 2 * 24, dtype=np.float32).reshape(2, 24)
    stamps = np.datetime64("2024-03-01T00:00") + np.arange(48).reshape(2, 24).astype("timedelta64[h]")
    return loaded.forecaster.predict(windows, loaded.forecaster.calendar(stamps))


def folder_bytes(registry: Registry, version: int) -> dict[str, bytes]:
    folder = registry.root / NAME / str(version)
    return {file: (folder / file).read_bytes() for file in (MANIFEST_FILE, WEIGHTS_FILE)}


def test_a_version_published_on_one_host_loads_on_another_from_the_database_alone(
    open_host: OpenHost, artifact: Artifact
) -> None:
    x, y = open_host("x"), open_host("y")
    published = publish(x, artifact, alias="production")
    assert not y.root.exists()  # host y has never seen a file of it

    assert y.read_manifest(y.resolve(NAME)).spec == artifact[1].spec  # fetched and cached on first read
    np.testing.assert_array_equal(forecast(y, published.version), forecast(x, published.version))
    assert folder_bytes(y, published.version) == folder_bytes(x, published.version)
    assert not [entry for entry in (y.root / NAME).iterdir() if entry.name.startswith(".staging-")]

    again = publish(x, artifact)  # a second version, and the other way round
    assert y.load(y.get_version(NAME, again.version)).version == again.version == 2
    assert folder_bytes(y, 2) == folder_bytes(x, 2)


@pytest.mark.parametrize("file", [WEIGHTS_FILE, MANIFEST_FILE])
def test_a_tampered_row_is_an_integrity_failure_naming_the_file(
    open_host: OpenHost, artifact: Artifact, file: str
) -> None:
    x, y = open_host("x"), open_host("y")
    publish(x, artifact, alias="production")
    with x.database.session() as session:
        content = session.scalars(select(ArtifactRow.content).where(ArtifactRow.file == file)).one()
        flipped = bytes(content[:-1]) + bytes([content[-1] ^ 1])
        session.execute(update(ArtifactRow).where(ArtifactRow.file == file).values(content=flipped))

    with pytest.raises(ArtifactIntegrityError) as raised:
        y.load(y.resolve(NAME))
    assert file in raised.value.detail and f"model {NAME!r} version 1" in raised.value.detail
    assert not (y.root / NAME / "1").exists()  # nothing unverified was written

    # the row's own hash re-signed: still refused, against the version row's digest
    with x.database.session() as session:
        session.execute(
            update(ArtifactRow)
            .where(ArtifactRow.file == file)
            .values(sha256=hashlib.sha256(flipped).hexdigest())
        )
    with pytest.raises(ArtifactIntegrityError, match="sha256"):
        y.load(y.resolve(NAME))
    assert x.load(x.resolve(NAME)).version == 1  # host x's verified local copy is unaffected


def forget_stored_files(registry: Registry) -> None:
    """Make every version look registered before files were stored in the database (folder only)."""
    with registry.database.session() as session:
        session.execute(delete(ArtifactRow))


def stored_versions(registry: Registry) -> list[int]:
    with registry.database.session() as session:
        return sorted(set(session.scalars(select(ArtifactRow.version)).all()))


def test_a_version_registered_before_is_copied_into_the_database_when_loaded(
    open_host: OpenHost, artifact: Artifact
) -> None:
    x, y = open_host("x"), open_host("y")
    publish(x, artifact, alias="production")
    forget_stored_files(x)

    with pytest.raises(ArtifactIntegrityError) as raised:
        y.load(y.resolve(NAME))  # only host x has it
    assert raised.value.detail.endswith("artifact files are missing")

    expected = forecast(x, 1)  # verified on x's disk, then copied in
    assert stored_versions(x) == [1]
    np.testing.assert_array_equal(forecast(y, 1), expected)
    assert folder_bytes(y, 1) == folder_bytes(x, 1)


def test_server_start_copies_every_version_registered_before(open_host: OpenHost, artifact: Artifact) -> None:
    x, y = open_host("x"), open_host("y")
    publish(x, artifact, alias="production")
    publish(x, artifact)
    forget_stored_files(x)
    (x.root / NAME / "2" / WEIGHTS_FILE).write_bytes(b"tampered")  # never copied: it fails verification

    collect_at_start(x)
    assert stored_versions(x) == [1]
    assert y.load(y.get_version(NAME, 1)).version == 1
    collect_at_start(x)  # nothing left to copy, nothing changes
    assert stored_versions(x) == [1]


def test_gc_removes_stored_files_of_a_version_row_deleted_by_hand(
    open_host: OpenHost, artifact: Artifact
) -> None:
    x = open_host("x")
    publish(x, artifact, alias="production")
    publish(x, artifact)
    with x.database.session() as session:
        session.execute(delete(VersionRow).where(VersionRow.version == 2))

    listed = collect(x, min_age_seconds=0, dry_run=True)
    stored = [(item.kind, item.version, item.action) for item in listed if item.kind == "stored files"]
    assert stored == [("stored files", 2, "would remove")]
    assert stored_versions(x) == [1, 2]
    removed = [item for item in collect(x, min_age_seconds=0) if item.kind == "stored files"]
    assert [(item.version, item.action) for item in removed] == [(2, "removed")]
    assert stored_versions(x) == [1]
    assert x.load(x.get_version(NAME, 1)).version == 1


def test_files_left_by_a_version_row_deleted_by_hand_do_not_block_its_number(
    open_host: OpenHost, artifact: Artifact
) -> None:
    x, y = open_host("x"), open_host("y")
    publish(x, artifact)
    publish(x, artifact)
    with x.database.session() as session:
        session.execute(delete(VersionRow).where(VersionRow.version == 2))
    info = publish(x, artifact, alias="production")
    assert info.version == 2
    assert y.load(y.resolve(NAME)).version == 2


# ------------------------------------------------------------------------------ publishers on several hosts
@pytest.fixture
def pg_url(postgres_cluster: PostgresCluster) -> Iterator[str]:
    name = postgres_cluster.create_database()
    yield postgres_cluster.url(name)
    postgres_cluster.drop_database(name)


def pg_registry(url: str, folder: Path) -> Registry:
    database = Database(url)
    create_schema(database)
    return Registry(database, folder)


def test_concurrent_publishers_on_two_hosts_get_distinct_numbers(
    pg_url: str, tmp_path: Path, artifact: Artifact
) -> None:
    hosts = [pg_registry(pg_url, tmp_path / f"models-{n}") for n in range(2)]
    start = threading.Barrier(len(hosts))
    published: dict[int, list[int]] = {n: [] for n in range(len(hosts))}
    errors: list[BaseException] = []

    def publish_many(n: int) -> None:
        try:
            start.wait()
            for _ in range(4):
                published[n].append(publish(hosts[n], artifact, alias="production").version)
        except BaseException as error:  # reported by the main thread
            errors.append(error)

    threads = [threading.Thread(target=publish_many, args=(n,)) for n in range(len(hosts))]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        assert not errors, errors
        numbers = published[0] + published[1]
        assert sorted(numbers) == list(range(1, 9))
        reader = pg_registry(pg_url, tmp_path / "models-reader")
        hosts.append(reader)
        assert reader.get_model(NAME).versions == list(range(1, 9))
        for n, versions in published.items():
            for version in versions:  # each host's folder holds its own publishes, equal to the stored files
                assert reader.load(reader.get_version(NAME, version)).version == version
                assert folder_bytes(hosts[n], version) == folder_bytes(reader, version)
    finally:
        for registry in hosts:
            registry.database.dispose()


def test_a_publisher_that_loses_the_race_for_a_number_takes_the_next(
    pg_url: str, tmp_path: Path, artifact: Artifact
) -> None:
    x = pg_registry(pg_url, tmp_path / "models-x")
    other = Database(pg_url)
    try:
        publish(x, artifact)
        rival = other.engine.connect()
        transaction = rival.begin()  # another host's publish of v2, not committed yet
        rival.execute(
            insert(VersionRow).values(
                model_name=NAME,
                version=2,
                path=f"{NAME}/2",
                weights_sha256="0" * 64,
                manifest_sha256="0" * 64,
            )
        )
        result: list[int] = []
        publisher = threading.Thread(target=lambda: result.append(publish(x, artifact).version))
        publisher.start()
        wait_for_lock_waiter(other)  # x chose 2 as well and waits on the unique index
        transaction.commit()
        rival.close()
        publisher.join(60)
        assert result == [3]
        assert x.get_model(NAME).versions == [1, 2, 3]
        assert sorted(entry.name for entry in (x.root / NAME).iterdir() if entry.name.isdigit()) == ["1", "3"]
        with x.database.session() as session:
            assert session.scalar(select(func.count()).select_from(AliasRow)) == 0
    finally:
        other.dispose()
        x.database.dispose()


def wait_for_lock_waiter(database: Database, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    query = text(
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
    )
    while time.monotonic() < deadline:
        with database.engine.connect() as connection:
            if connection.scalar(query):
                return
        time.sleep(0.05)
    raise AssertionError("the publisher never waited on the rival's uncommitted version")
