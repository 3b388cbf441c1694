"""Leftovers of killed publishes: `.staging-*` folders, `.trash-*` folders and numbered folders without a
database row, and stored files (`model_artifacts` rows) of versions whose row is gone. Found and removed by
`tswatch models gc` and at server start.

A model is only cleaned while its publish lock is free (see app.registry.layout): a publish in progress in any
process holds it, so its folders are never touched. As a second guard, for writers that do not take the lock
(an older tswatch during an upgrade), nothing modified less than `min_age_seconds` ago is removed.
Registered versions are never touched: a folder or stored files are only candidates when the database has no
version row for them. Stored files are never part of a publish in progress (they are committed with the version
row), so neither the lock nor the age applies to them; their `path` names the table, not a folder.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Final, Literal

from app.registry.layout import STAGING_PREFIX, TRASH_PREFIX, discard, remove, try_publish_lock, version_of
from app.registry.store import NAME_PATTERN, ModelNotFoundError, Registry
from app.registry.stored import orphan_files
from app.storage.tables.registry import ArtifactRow

logger = logging.getLogger(__name__)

DEFAULT_MIN_AGE_SECONDS: Final = 600.0

Kind = Literal["staging", "trash", "unregistered", "stored files"]
REMOVED: Final = "removed"
WOULD_REMOVE: Final = "would remove"
KEPT_YOUNG: Final = "kept: younger than the safety age"
KEPT_LOCKED: Final = "kept: a publish of this model is in progress"
FAILED: Final = "failed"


@dataclass(frozen=True)
class Leftover:
    model: str
    path: Path
    kind: Kind
    version: int | None
    age_seconds: float
    action: str  # REMOVED, WOULD_REMOVE, KEPT_*, or "failed: <reason>"

    @property
    def failed(self) -> bool:
        return self.action.startswith(FAILED)


def collect(
    registry: Registry, min_age_seconds: float = DEFAULT_MIN_AGE_SECONDS, dry_run: bool = False
) -> list[Leftover]:
    """Every leftover under the registry's root and in its database, each with what was done to it (nothing
    when `dry_run`)."""
    model_dirs = (
        sorted(
            entry
            for entry in registry.root.iterdir()
            if entry.is_dir() and not entry.is_symlink() and NAME_PATTERN.fullmatch(entry.name)
        )
        if registry.root.is_dir()
        else []
    )
    folders = [
        leftover
        for model_dir in model_dirs
        for leftover in _collect_model(registry, model_dir, min_age_seconds, dry_run)
    ]
    return folders + _collect_stored(registry, dry_run)


def _collect_stored(registry: Registry, dry_run: bool) -> list[Leftover]:
    action = WOULD_REMOVE if dry_run else REMOVED
    return [
        Leftover(
            name, Path(ArtifactRow.__tablename__, name, str(version)), "stored files", version, 0.0, action
        )
        for name, version in orphan_files(registry.database, remove=not dry_run)
    ]


def collect_at_start(registry: Registry) -> list[Leftover]:
    """The server-start pass: leftovers cleaned, and the files of versions registered before files were stored
    in the database copied into it from this host's folder. Logged; a failure never stops the server."""
    for name, version in registry.store_local_versions():
        logger.info("stored the files of %s v%s in the database", name, version)
    try:
        leftovers = collect(registry)
    except OSError as error:
        logger.warning("could not clean leftovers of crashed publishes in %s: %s", registry.root, error)
        return []
    for leftover in leftovers:
        logger.info(
            "registry leftover %s (%s, model %s): %s",
            leftover.path,
            leftover.kind,
            leftover.model,
            leftover.action,
        )
    return leftovers


def _collect_model(registry: Registry, model_dir: Path, min_age: float, dry_run: bool) -> list[Leftover]:
    with try_publish_lock(model_dir) as locked:
        found = _leftovers(model_dir, _registered(registry, model_dir.name))
        return [_settle(leftover, locked, min_age, dry_run) for leftover in found]


def _registered(registry: Registry, name: str) -> set[int]:
    try:
        return {info.version for info in registry.versions(name)}
    except ModelNotFoundError:
        return set()


def _leftovers(model_dir: Path, registered: set[int]) -> list[Leftover]:
    now = time.time()
    found = []
    for entry in sorted(model_dir.iterdir()):
        kind, version = _classify(entry, registered)
        if kind is not None:
            found.append(Leftover(model_dir.name, entry, kind, version, _age(entry, now), ""))
    return found


def _classify(entry: Path, registered: set[int]) -> tuple[Kind | None, int | None]:
    if entry.name.startswith(STAGING_PREFIX):
        return "staging", None
    if entry.name.startswith(TRASH_PREFIX):
        return "trash", None
    version = version_of(entry)
    if version is not None and version not in registered:
        return "unregistered", version
    return None, None


def _age(entry: Path, now: float) -> float:
    """Seconds since the entry or anything directly in it was last modified (a writer touches its folder)."""
    stamps = [entry.lstat().st_mtime]
    if entry.is_dir() and not entry.is_symlink():
        for child in entry.iterdir():
            try:
                stamps.append(child.lstat().st_mtime)
            except FileNotFoundError:
                continue
    return max(0.0, now - max(stamps))


def _settle(leftover: Leftover, locked: bool, min_age: float, dry_run: bool) -> Leftover:
    action = _decide(leftover, locked, min_age, dry_run)
    if action == REMOVED:
        try:
            _remove(leftover)
        except OSError as error:
            action = f"{FAILED}: {error.strerror or error}"
    return replace(leftover, action=action)


def _remove(leftover: Leftover) -> None:
    if leftover.kind == "trash":
        remove(leftover.path)  # already renamed out of the way
    else:
        discard(leftover.path)


def _decide(leftover: Leftover, locked: bool, min_age: float, dry_run: bool) -> str:
    if not locked:
        return KEPT_LOCKED
    if leftover.age_seconds < min_age:
        return KEPT_YOUNG
    return WOULD_REMOVE if dry_run else REMOVED
