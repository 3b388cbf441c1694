"""The model registry: immutable numbered versions, movable aliases, crash-safe publishing.

A version is its database rows: the `model_versions` row and the bytes of its files (`model_artifacts`,
app.registry.stored), inserted in one transaction, which is the commit point. The local models folder is a
cache of those files (and the whole store of versions registered before they were stored in the database).

Publishing holds the model's publish lock (app.registry.layout): it writes the artifact into a staging folder
beside the versions and fsyncs it; it commits the rows under the number after the last registered version,
taking the next number when another process (on any host: the lock is local) committed that one first; only then
it renames the staging folder to the version's number. A crash before the commit leaves an orphan staging folder
and burns no number; a crash after it leaves the version without a local copy, which the next load fetches from
the database. Leftover folders are cleaned by app.registry.gc (`tswatch models gc`, and at server start).

Loading a version whose folder is missing (registered by another replica, or a wiped cache) first copies its
files from the database into the folder (verified, through a staging folder); every load verifies every hash.
A version that has no stored files yet has them copied into the database once it is found verified on disk.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import torch
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.errors import ConflictError, InvalidInputError, NotFoundError
from app.registry.artifacts import (
    MANIFEST_FILE,
    WEIGHTS_FILE,
    ArtifactIntegrityError,
    read_manifest,
    read_weights,
    sha256_bytes,
    write_artifact,
)
from app.registry.layout import discard, install, materialise, new_staging, publish_lock
from app.registry.loading import LoadedModel, build_forecaster
from app.registry.manifest import Manifest, VersionSummary
from app.registry.quality import PRODUCTION_ALIAS, check_alias_target
from app.registry.stored import (
    Digests,
    delete_files,
    fetch_files,
    has_files,
    put_files,
    store_local_files,
    versions_without_files,
)
from app.storage.database import Database
from app.storage.tables.registry import AliasRow, ModelRow, VersionRow
from app.timestamps import utc_now

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
ALIAS_PATTERN = re.compile(r"^[a-z][a-z0-9._-]{0,63}$")
DEFAULT_ALIAS = PRODUCTION_ALIAS
PUBLISH_ATTEMPTS = 100  # numbers tried when other hosts keep committing the next one first

logger = logging.getLogger("tswatch.registry")


class ModelNotFoundError(NotFoundError):
    title = "Model not found"
    slug = "model-not-found"


class VersionNotFoundError(NotFoundError):
    title = "Version not found"
    slug = "version-not-found"


class AliasNotFoundError(NotFoundError):
    title = "Alias not found"
    slug = "alias-not-found"


class VersionInUseError(ConflictError):
    title = "Version in use"
    slug = "version-in-use"


@dataclass(frozen=True)
class VersionInfo:
    name: str
    version: int
    path: Path
    weights_sha256: str
    manifest_sha256: str
    created_at: datetime
    summary: VersionSummary = field(default_factory=VersionSummary)


@dataclass(frozen=True)
class ModelInfo:
    name: str
    created_at: datetime
    versions: list[int]
    aliases: dict[str, int]

    @property
    def latest_version(self) -> int | None:
        return max(self.versions) if self.versions else None

    @property
    def default_version(self) -> int | None:
        """The version a request without a version or alias gets: the `production` alias, else the latest."""
        return self.aliases.get(DEFAULT_ALIAS, self.latest_version)

    def aliases_of(self, version: int) -> list[str]:
        """The aliases pointing at `version`, sorted."""
        return sorted(alias for alias, target in self.aliases.items() if target == version)


def validate_model_name(name: str) -> str:
    if not NAME_PATTERN.fullmatch(name):
        raise InvalidInputError(
            f"model name {name!r} is invalid: use 1-64 lowercase letters, digits, '.', '_' or '-', "
            "starting with a letter or digit",
            fields={"name": name},
        )
    return name


def validate_alias(alias: str) -> str:
    if not ALIAS_PATTERN.fullmatch(alias):
        raise InvalidInputError(
            f"alias {alias!r} is invalid: use 1-64 lowercase letters, digits, '.', '_' or '-', starting with a letter",
            fields={"alias": alias},
        )
    return alias


def _version_info(row: VersionRow, root: Path) -> VersionInfo:
    return VersionInfo(
        name=row.model_name,
        version=row.version,
        path=root / row.path,
        weights_sha256=row.weights_sha256,
        manifest_sha256=row.manifest_sha256,
        created_at=row.created_at,
        summary=VersionSummary.model_validate_json(row.summary or "{}"),
    )


PublishHook = Callable[[Session, VersionRow, VersionSummary], None]
"""Runs inside the transaction that registers a version, after its rows are flushed; raising rolls it back."""


class Registry:
    def __init__(self, database: Database, root: Path, *, publish_hook: PublishHook | None = None) -> None:
        self.database = database
        self.root = root.resolve()
        self._publish_hook = publish_hook

    def with_publish_hook(self, hook: PublishHook) -> Registry:
        """The same registry, whose publishes also run `hook` in their transaction (app.jobs.publishing)."""
        return Registry(self.database, self.root, publish_hook=hook)

    def publish(
        self,
        name: str,
        tensors: dict[str, torch.Tensor],
        manifest: Manifest,
        alias: str | None = None,
        *,
        force: bool = False,
    ) -> VersionInfo:
        """Register `manifest` and its weights as the next version; the row keeps its `VersionSummary`.
        A guarded alias refuses a version that loses to a naive baseline unless `force` (nothing is registered
        then: app.training.pipeline checks first and registers such a version without the alias)."""
        validate_model_name(name)
        summary = VersionSummary.of(manifest)
        if alias is not None:
            validate_alias(alias)
            check_alias_target(name, None, alias, summary, force=force)
        model_dir = self.root / name
        model_dir.mkdir(parents=True, exist_ok=True)
        with publish_lock(model_dir):
            staging = new_staging(model_dir)
            try:
                files = write_artifact(staging, tensors, manifest.model_copy(update={"name": name}))
                row = self._commit_version(name, files, summary, alias)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
            self._install(staging, model_dir / str(row.version))
        return _version_info(row, self.root)

    def _commit_version(
        self, name: str, files: dict[str, bytes], summary: VersionSummary, alias: str | None
    ) -> VersionRow:
        """Insert the version row and its files under the number after the last registered version, in one
        transaction; when another process committed that number first (the unique constraint), take the next."""
        for attempt in range(1, PUBLISH_ATTEMPTS + 1):
            try:
                with self.database.session() as session:
                    return self._insert_version(session, name, files, summary, alias)
            except IntegrityError:
                if attempt == PUBLISH_ATTEMPTS:
                    raise
                logger.info("%s: another process registered the same version first; taking the next", name)
        raise AssertionError("unreachable")

    def _insert_version(
        self, session: Session, name: str, files: dict[str, bytes], summary: VersionSummary, alias: str | None
    ) -> VersionRow:
        if session.get(ModelRow, name) is None:
            session.add(ModelRow(name=name))
            session.flush()
        # The last version first, then the deleted numbers: a delete committed between the two reads is seen
        # by the second (one transaction removes the row and records its number), so no number is reused.
        latest = session.scalar(select(func.max(VersionRow.version)).where(VersionRow.model_name == name))
        deleted = session.scalar(select(ModelRow.deleted_through).where(ModelRow.name == name))
        version = max(latest or 0, deleted or 0) + 1
        row = VersionRow(
            model_name=name,
            version=version,
            path=f"{name}/{version}",
            weights_sha256=sha256_bytes(files[WEIGHTS_FILE]),
            manifest_sha256=sha256_bytes(files[MANIFEST_FILE]),
            summary=json.dumps(summary.model_dump(mode="json"), allow_nan=False),
        )
        session.add(row)
        session.flush()
        put_files(session, name, version, files)
        if alias is not None:
            self._upsert_alias(session, name, alias, version)
        if self._publish_hook is not None:
            self._publish_hook(session, row, summary)
        return row

    @staticmethod
    def _install(staging: Path, target: Path) -> None:
        """Rename the committed version's staging folder into place; on failure the version stays registered
        (its files are in the database, copied here on first load) and the staging folder is a leftover."""
        try:
            install(staging, target)
        except OSError as error:
            logger.warning("could not place the local copy of %s: %s", target, error)

    def list_models(self) -> list[ModelInfo]:
        with self.database.session() as session:
            models = session.scalars(select(ModelRow).order_by(ModelRow.name)).all()
            versions = session.execute(select(VersionRow.model_name, VersionRow.version)).all()
            aliases = session.execute(select(AliasRow.model_name, AliasRow.alias, AliasRow.version)).all()
        return [
            ModelInfo(
                name=model.name,
                created_at=model.created_at,
                versions=sorted(v for n, v in versions if n == model.name),
                aliases={alias: version for n, alias, version in aliases if n == model.name},
            )
            for model in models
        ]

    def get_model(self, name: str) -> ModelInfo:
        for model in self.list_models():
            if model.name == name:
                return model
        raise ModelNotFoundError(f"model {name!r} is not registered", fields={"name": name})

    def versions(self, name: str) -> list[VersionInfo]:
        return self.model_versions(name)[1]

    def model_versions(self, name: str) -> tuple[ModelInfo, list[VersionInfo]]:
        """A model and every one of its versions, oldest first."""
        model = self.get_model(name)
        with self.database.session() as session:
            rows = session.scalars(
                select(VersionRow).where(VersionRow.model_name == name).order_by(VersionRow.version)
            ).all()
        return model, [_version_info(row, self.root) for row in rows]

    def version_manifest(self, name: str, version: int) -> tuple[ModelInfo, Manifest]:
        """A version's verified manifest with its model (whose aliases say which point at the version)."""
        manifest = self.read_manifest(self.get_version(name, version))
        return self.get_model(name), manifest

    def get_version(self, name: str, version: int) -> VersionInfo:
        with self.database.session() as session:
            row = session.scalar(
                select(VersionRow).where(VersionRow.model_name == name, VersionRow.version == version)
            )
        if row is None:
            self.get_model(name)
            raise VersionNotFoundError(
                f"model {name!r} has no version {version}", fields={"name": name, "version": version}
            )
        return _version_info(row, self.root)

    def resolve(self, name: str, version: int | None = None, alias: str | None = None) -> VersionInfo:
        """Pick a version: explicit number, else the named alias, else `production`, else the latest."""
        if version is not None:
            return self.get_version(name, version)
        model = self.get_model(name)
        if alias is not None:
            if alias not in model.aliases:
                raise AliasNotFoundError(
                    f"model {name!r} has no alias {alias!r}; known aliases: {sorted(model.aliases) or 'none'}",
                    fields={"name": name, "alias": alias},
                )
            return self.get_version(name, model.aliases[alias])
        if model.default_version is None:
            raise VersionNotFoundError(f"model {name!r} has no versions", fields={"name": name})
        return self.get_version(name, model.default_version)

    def set_alias(self, name: str, alias: str, version: int, *, force: bool = False) -> None:
        """Point `alias` at `version`; a guarded alias refuses a version that loses to a naive baseline unless
        `force` (app.registry.quality)."""
        validate_alias(alias)
        info = self.get_version(name, version)
        check_alias_target(name, version, alias, info.summary, force=force)
        with self.database.session() as session:
            _lock_model(session, name)  # a concurrent delete_version waits, or has already removed the row
            _version_row(session, name, version)
            self._upsert_alias(session, name, alias, version)

    def delete_version(self, name: str, version: int) -> None:
        """Remove a version: its row and stored files in one transaction (the commit point), then its local
        folder (renamed to a trash folder first; a crash leaves a leftover for app.registry.gc). Refused while
        an alias points at it. Its number is recorded as deleted, so it is never registered again."""
        info = self.get_version(name, version)
        model_dir = self.root / name
        model_dir.mkdir(parents=True, exist_ok=True)
        with publish_lock(model_dir):  # no local publish or copy of this model runs meanwhile
            with self.database.session() as session:
                self._delete_rows(session, name, version)
            if info.path.exists() or info.path.is_symlink():
                try:
                    discard(info.path)
                except OSError as error:
                    logger.warning(
                        "could not remove %s (a leftover for `tswatch models gc`): %s", info.path, error
                    )
        logger.info("deleted %s v%s", name, version)

    @staticmethod
    def _delete_rows(session: Session, name: str, version: int) -> None:
        model = _lock_model(session, name)
        aliases = sorted(
            session.scalars(
                select(AliasRow.alias).where(AliasRow.model_name == name, AliasRow.version == version)
            ).all()
        )
        if aliases:
            named = ", ".join(repr(alias) for alias in aliases)
            raise VersionInUseError(
                f"version {version} of model {name!r} is the target of alias {named}; point the alias at another "
                f"version (PUT /v1/models/{name}/aliases/ALIAS) or delete it first",
                fields={"name": name, "version": version, "aliases": aliases},
            )
        delete_files(session, name, version)
        session.delete(_version_row(session, name, version))
        model.deleted_through = max(model.deleted_through or 0, version)

    @staticmethod
    def _upsert_alias(session: Any, name: str, alias: str, version: int) -> None:
        row = session.get(AliasRow, (name, alias))
        if row is None:
            session.add(AliasRow(model_name=name, alias=alias, version=version))
        else:
            row.version = version
            row.updated_at = utc_now()

    def delete_alias(self, name: str, alias: str) -> None:
        self.get_model(name)
        with self.database.session() as session:
            row = session.get(AliasRow, (name, alias))
            if row is not None:
                session.delete(row)
        if row is None:
            raise AliasNotFoundError(
                f"model {name!r} has no alias {alias!r}", fields={"name": name, "alias": alias}
            )

    def read_manifest(self, info: VersionInfo) -> Manifest:
        """The verified, validated manifest of a version (an ArtifactIntegrityError if it is neither)."""
        with _verifying(info):
            self._ensure_local(info)
            return _read_manifest(info)

    def load(self, info: VersionInfo) -> LoadedModel:
        with _verifying(info):
            self._ensure_local(info)
            manifest = _read_manifest(info)
            if manifest.weights is None or manifest.weights.sha256 != info.weights_sha256:
                raise ArtifactIntegrityError(
                    f"manifest of {info.name} v{info.version} names other weights than the registry",
                    kind="manifest names other weights than the registry",
                )
            forecaster = build_forecaster(manifest.spec, read_weights(info.path, manifest))
        self._store_if_local_only(info)
        return LoadedModel(name=info.name, version=info.version, manifest=manifest, forecaster=forecaster)

    def _ensure_local(self, info: VersionInfo) -> None:
        """Copy a version's files from the database into its folder when the folder is missing."""
        if info.path.exists() or info.path.is_symlink():
            return
        files = fetch_files(self.database, info.name, info.version, _digests(info))
        if files is None:
            raise ArtifactIntegrityError(
                f"{info.path} is missing and the database stores no files of {info.name} v{info.version}",
                kind="artifact files are missing",
            )
        materialise(info.path, files)

    def _store_if_local_only(self, info: VersionInfo) -> None:
        """Copy the files of a version registered before they were stored in the database (just verified in
        its folder) into the database, so other replicas can load it. A failure only logs: the load stands."""
        if has_files(self.database, info.name, info.version):
            return
        try:
            if store_local_files(self.database, info.name, info.version, info.path, _digests(info)):
                logger.info("stored the files of %s v%s in the database", info.name, info.version)
        except (OSError, ArtifactIntegrityError) as error:
            logger.warning("could not store the files of %s v%s: %s", info.name, info.version, error)

    def store_local_versions(self) -> list[tuple[str, int]]:
        """Copy into the database the files of every version that has none stored but a verified local folder
        (versions registered before files were stored in the database); returns the versions copied."""
        copied = []
        for name, version in versions_without_files(self.database):
            info = self.get_version(name, version)
            if not info.path.is_dir():
                continue
            try:
                if store_local_files(self.database, name, version, info.path, _digests(info)):
                    copied.append((name, version))
            except (OSError, ArtifactIntegrityError) as error:
                logger.warning("could not store the files of %s v%s: %s", name, version, error)
        return copied


def _lock_model(session: Session, name: str) -> ModelRow:
    """The model's row, locked for the transaction (SELECT ... FOR UPDATE; SQLite serialises writers anyway):
    alias changes and version deletes of one model take turns."""
    model = session.get(ModelRow, name, with_for_update=True)
    if model is None:
        raise ModelNotFoundError(f"model {name!r} is not registered", fields={"name": name})
    return model


def _version_row(session: Session, name: str, version: int) -> VersionRow:
    row = session.scalar(
        select(VersionRow).where(VersionRow.model_name == name, VersionRow.version == version)
    )
    if row is None:
        raise VersionNotFoundError(
            f"model {name!r} has no version {version}", fields={"name": name, "version": version}
        )
    return row


def _digests(info: VersionInfo) -> Digests:
    return {WEIGHTS_FILE: info.weights_sha256, MANIFEST_FILE: info.manifest_sha256}


def _read_manifest(info: VersionInfo) -> Manifest:
    manifest = read_manifest(info.path, info.manifest_sha256)
    return manifest.model_copy(update={"version": info.version})


@contextmanager
def _verifying(info: VersionInfo) -> Iterator[None]:
    """Log a verification failure in full (with the file's path) and re-raise it naming only the version."""
    try:
        yield
    except ArtifactIntegrityError as error:
        logger.error("%s v%s failed verification: %s", info.name, info.version, error)
        raise error.identified(info.name, info.version) from error
