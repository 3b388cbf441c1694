"""The model registry: immutable numbered versions, movable aliases, crash-safe publishing.

Publishing holds the model's publish lock (app.registry.layout) throughout: it writes the artifact into a
staging folder beside the versions, fsyncs it, claims the number after the last registered version by renaming
the folder, fsyncs the parent, and only then inserts the database row. The row is the commit point: a crash
before it leaves at most an orphan folder that no row points to, and every row always points to a complete,
verified artifact. Orphans never burn a number (the next claim discards one in its way) and are cleaned by
app.registry.gc (`tswatch models gc`, and at server start).
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import torch
from sqlalchemy import func, select

from app.errors import InvalidInputError, NotFoundError
from app.registry.artifacts import (
    ArtifactIntegrityError,
    fsync_directory,
    read_manifest,
    read_weights,
    write_artifact,
)
from app.registry.layout import discard, new_staging, publish_lock
from app.registry.loading import LoadedModel, build_forecaster
from app.registry.manifest import Manifest, VersionSummary
from app.storage.database import Database
from app.storage.tables.registry import AliasRow, ModelRow, VersionRow
from app.timestamps import utc_now

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
ALIAS_PATTERN = re.compile(r"^[a-z][a-z0-9._-]{0,63}$")
DEFAULT_ALIAS = "production"

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


class Registry:
    def __init__(self, database: Database, root: Path) -> None:
        self.database = database
        self.root = root.resolve()

    def publish(
        self,
        name: str,
        tensors: dict[str, torch.Tensor],
        manifest: Manifest,
        alias: str | None = None,
    ) -> VersionInfo:
        """Register `manifest` and its weights as the next version; the row keeps its `VersionSummary`."""
        validate_model_name(name)
        if alias is not None:
            validate_alias(alias)
        model_dir = self.root / name
        model_dir.mkdir(parents=True, exist_ok=True)
        with publish_lock(model_dir):
            staging = new_staging(model_dir)
            try:
                weights_sha, manifest_sha = write_artifact(
                    staging, tensors, manifest.model_copy(update={"name": name})
                )
                version = self._claim_version(name, staging)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
            row = VersionRow(
                model_name=name,
                version=version,
                path=f"{name}/{version}",
                weights_sha256=weights_sha,
                manifest_sha256=manifest_sha,
                summary=json.dumps(VersionSummary.of(manifest).model_dump(mode="json"), allow_nan=False),
            )
            with self.database.session() as session:
                if session.get(ModelRow, name) is None:
                    session.add(ModelRow(name=name))
                    session.flush()
                session.add(row)
                session.flush()
                if alias is not None:
                    self._upsert_alias(session, name, alias, version)
        return _version_info(row, self.root)

    def _claim_version(self, name: str, staging: Path) -> int:
        """Rename `staging` to the number after the last registered version. Only called under the publish
        lock, so a folder already holding that number is the orphan of a killed publish: discard it rather
        than skip the number."""
        version = self._next_version(name)
        target = staging.parent / str(version)
        if target.exists() or target.is_symlink():
            discard(target)
        staging.rename(target)
        fsync_directory(staging.parent)
        return version

    def _next_version(self, name: str) -> int:
        with self.database.session() as session:
            latest = session.scalar(select(func.max(VersionRow.version)).where(VersionRow.model_name == name))
        return (latest or 0) + 1

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

    def set_alias(self, name: str, alias: str, version: int) -> None:
        validate_alias(alias)
        self.get_version(name, version)
        with self.database.session() as session:
            self._upsert_alias(session, name, alias, version)

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
            return _read_manifest(info)

    def load(self, info: VersionInfo) -> LoadedModel:
        with _verifying(info):
            manifest = _read_manifest(info)
            if manifest.weights is None or manifest.weights.sha256 != info.weights_sha256:
                raise ArtifactIntegrityError(
                    f"manifest of {info.name} v{info.version} names other weights than the registry",
                    kind="manifest names other weights than the registry",
                )
            forecaster = build_forecaster(manifest.spec, read_weights(info.path, manifest))
        return LoadedModel(name=info.name, version=info.version, manifest=manifest, forecaster=forecaster)


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
