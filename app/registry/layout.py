"""One model's folder in the registry: what its entries are, the lock that serialises publishing, and removal.

    models/<name>/<N>/              version N: registered once the database has its row
    models/<name>/.staging-<hex>/   an artifact being written (or left behind by a killed publish)
    models/<name>/.trash-<hex>/     a folder being deleted (or left behind by a killed delete)
    models/<name>/.publish.lock     flock()ed for a whole publish: write, claim, database row

While the lock is held by nobody, no publish is in progress for that model, so every staging folder and every
numbered folder without a row is a leftover of a crash. The kernel drops the lock of a killed process.
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

from app.registry.artifacts import fsync_directory

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
