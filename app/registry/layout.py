"""One model's folder in the registry: what its entries are, the lock that serialises publishing, and removal.

    models/<name>/<N>/              the local copy of version N, renamed into place once its row is committed
    models/<name>/.staging-<hex>/   an artifact being written (or left behind by a killed publish or copy)
    models/<name>/.trash-<hex>/     a folder being deleted (or left behind by a killed delete)
    models/<name>/.publish.lock     flock()ed for a whole publish (write, database rows, rename) and for a copy
                                    of a version fetched from the database

The database holds every version's files (app.registry.stored); the folder is their local cache. While the lock
is held by nobody, no publish or copy is in progress for that model, so every staging folder and every numbered
folder without a row is a leftover of a crash. The kernel drops the lock of a killed process.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final

from app.registry.artifacts import fsync_directory, write_files

STAGING_PREFIX: Final = ".staging-"
TRASH_PREFIX: Final = ".trash-"
LOCK_FILE: Final = ".publish.lock"
_VERSION_NAME = re.compile(r"^[1-9][0-9]*$")


def version_of(entry: Path) -> int | None:
    """The version number a folder name stands for (`3`), None for anything else (`03`, `.staging-…`)."""
    return int(entry.name) if _VERSION_NAME.fullmatch(entry.name) else None


def new_staging(model_dir: Path) -> Path:
    staging = model_dir / f"{STAGING_PREFIX}{uuid.uuid4().hex}"
    staging.mkdir()
    return staging


def _open_lock(model_dir: Path) -> int:
    return os.open(model_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)


@contextmanager
def publish_lock(model_dir: Path) -> Iterator[None]:
    """Hold the model's publish lock (waiting for it) for the block."""
    descriptor = _open_lock(model_dir)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)  # releases the lock


@contextmanager
def try_publish_lock(model_dir: Path) -> Iterator[bool]:
    """Hold the model's publish lock for the block if it is free now; yields whether it is held (never waits)."""
    descriptor = _open_lock(model_dir)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
        else:
            yield True
    finally:
        os.close(descriptor)


def install(staging: Path, target: Path) -> None:
    """Rename a complete staging folder to its version's folder `target`, durably. Only under the publish lock,
    and only once the version's row is committed: a folder already in the way is then the orphan of a killed
    publish by older code (which claimed the folder before the row) and is discarded."""
    if target.exists() or target.is_symlink():
        discard(target)
    staging.rename(target)
    fsync_directory(staging.parent)


def materialise(target: Path, files: dict[str, bytes]) -> None:
    """Make `target` the local copy of a version from its (verified) files, unless a copy is already there.

    Under the publish lock, through a staging folder renamed into place: a reader sees no folder or a
    complete one, and a crash leaves only a staging folder (a leftover for app.registry.gc)."""
    model_dir = target.parent
    model_dir.mkdir(parents=True, exist_ok=True)
    with publish_lock(model_dir):
        if target.exists():
            return  # copied (or published) by another process meanwhile
        staging = new_staging(model_dir)
        try:
            write_files(staging, files)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        install(staging, target)


def discard(entry: Path) -> None:
    """Delete a folder (or file): renamed to a trash name first, so its own name is free at once even if the
    deletion is interrupted (what is left then is a `.trash-*` folder, itself a leftover)."""
    trash = entry.parent / f"{TRASH_PREFIX}{uuid.uuid4().hex}"
    entry.rename(trash)
    fsync_directory(entry.parent)
    remove(trash)


def remove(entry: Path) -> None:
    if entry.is_dir() and not entry.is_symlink():
        shutil.rmtree(entry)
    else:
        entry.unlink(missing_ok=True)
