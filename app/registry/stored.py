"""Model artifacts stored in the database (`model_artifacts`): each version's files with their SHA-256.

The rows of a version are inserted in the same transaction as its `model_versions` row, so every registered
version carries its files and any replica can load it with no shared disk. Rows are always verified against
the digests of the version row before their bytes are used. Versions registered before these rows existed
have their files only in a local folder: the registry copies them in when it finds them verified there.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import and_, delete, exists, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.registry.artifacts import ARTIFACT_FILES, ArtifactIntegrityError, sha256_bytes
from app.storage.database import Database
from app.storage.tables.registry import ArtifactRow, VersionRow

Digests = dict[str, str]  # file name -> the sha256 the version row records for it
VersionKey = tuple[str, int]


def put_files(session: Session, name: str, version: int, files: dict[str, bytes]) -> None:
    """Store a version's files in the caller's transaction, replacing rows left for the same number by a version
    row deleted by hand (they would otherwise block the number forever)."""
    delete_files(session, name, version)
    session.add_all(
        ArtifactRow(
            model_name=name, version=version, file=file, content=content, sha256=sha256_bytes(content)
        )
        for file, content in files.items()
    )


def delete_files(session: Session, name: str, version: int) -> None:
    """Remove a version's stored files in the caller's transaction (the one that deletes its version row)."""
    session.execute(delete(ArtifactRow).where(ArtifactRow.model_name == name, ArtifactRow.version == version))


def fetch_files(database: Database, name: str, version: int, digests: Digests) -> dict[str, bytes] | None:
    """The version's files from the database, each verified against `digests`; None when it has no rows.

    A row whose bytes do not match (its own recorded hash or the version row's) is an ArtifactIntegrityError
    naming the file."""
    with database.session() as session:
        rows = session.execute(
            select(ArtifactRow.file, ArtifactRow.content, ArtifactRow.sha256).where(
                ArtifactRow.model_name == name, ArtifactRow.version == version
            )
        ).all()
    if not rows:
        return None
    stored = {file: (bytes(content), sha256) for file, content, sha256 in rows}
    files = {}
    for file, expected in digests.items():
        if file not in stored:
            raise ArtifactIntegrityError(
                f"{file} of {name} v{version} is missing from the database", kind=f"stored {file} is missing"
            )
        content, recorded = stored[file]
        if not sha256_bytes(content) == recorded == expected:
            raise ArtifactIntegrityError(
                f"{file} of {name} v{version} stored in the database does not match its recorded sha256",
                kind=f"stored {file} sha256 mismatch",
            )
        files[file] = content
    return files


def has_files(database: Database, name: str, version: int) -> bool:
    with database.session() as session:
        stored = session.scalars(
            select(ArtifactRow.file).where(ArtifactRow.model_name == name, ArtifactRow.version == version)
        ).all()
    return set(ARTIFACT_FILES) <= set(stored)


def store_local_files(database: Database, name: str, version: int, folder: Path, digests: Digests) -> bool:
    """Copy a version's files from its local folder into the database, each verified against `digests`.

    Returns whether this call stored them (False: another process did at the same time). OSError when a file
    cannot be read, ArtifactIntegrityError when one does not match."""
    files = {}
    for file, expected in digests.items():
        content = (folder / file).read_bytes()
        if sha256_bytes(content) != expected:
            raise ArtifactIntegrityError(
                f"{folder / file} does not match its recorded sha256", kind=f"{file} sha256 mismatch"
            )
        files[file] = content
    try:
        with database.session() as session:
            put_files(session, name, version, files)
    except IntegrityError:
        return False
    return True


def versions_without_files(database: Database) -> list[VersionKey]:
    """Registered versions with no stored files (registered before artifacts were stored in the database)."""
    stored = exists().where(
        and_(ArtifactRow.model_name == VersionRow.model_name, ArtifactRow.version == VersionRow.version)
    )
    with database.session() as session:
        rows = session.execute(
            select(VersionRow.model_name, VersionRow.version)
            .where(~stored)
            .order_by(VersionRow.model_name, VersionRow.version)
        ).all()
    return [(name, version) for name, version in rows]


def orphan_files(database: Database, remove: bool) -> list[VersionKey]:
    """Versions whose files are stored but that have no version row (deleted by hand); removed if `remove`.

    Never part of a publish in progress: a publish inserts the files with the version row in one transaction,
    and each delete re-checks, in the same statement, that the version row is still absent."""
    registered = exists().where(
        and_(VersionRow.model_name == ArtifactRow.model_name, VersionRow.version == ArtifactRow.version)
    )
    with database.session() as session:
        found = [
            (name, version)
            for name, version in session.execute(
                select(ArtifactRow.model_name, ArtifactRow.version)
                .where(~registered)
                .distinct()
                .order_by(ArtifactRow.model_name, ArtifactRow.version)
            ).all()
        ]
    if remove:
        for name, version in found:
            _delete_unregistered(database, name, version)
    return found


def _delete_unregistered(database: Database, name: str, version: int) -> None:
    registered = exists().where(VersionRow.model_name == name, VersionRow.version == version)
    with database.session() as session:
        session.execute(
            delete(ArtifactRow).where(
                ArtifactRow.model_name == name, ArtifactRow.version == version, ~registered
            )
        )
