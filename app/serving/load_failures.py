"""Remembered verification failures: a corrupt version is read and hashed once, not on every poll or request.

A version whose artifact failed verification (`ArtifactIntegrityError`) fails the same way until something
changes: its files (size, mtime, ctime, inode of the manifest and the weights) or its registry row (path and
recorded digests). Until then the alias watcher skips it and requests for it get the remembered answer at the
cost of two `stat` calls. Other load failures (a restarting inference worker) are transient and not remembered.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path

from app.registry.artifacts import ArtifactIntegrityError, files_stamp
from app.registry.store import VersionInfo

Key = tuple[str, int]
Stamp = tuple[Path, str, str, tuple[tuple[int, int, int, int] | None, ...]]


def load_stamp(info: VersionInfo) -> Stamp:
    """What a version's verification depends on: its row and its files (blocking: it stats the files)."""
    return info.path, info.weights_sha256, info.manifest_sha256, files_stamp(info.path)


@dataclass
class LoadFailures:
    _failures: dict[Key, tuple[Stamp, ArtifactIntegrityError]] = field(default_factory=dict)

    def remember(self, info: VersionInfo, stamp: Stamp, error: ArtifactIntegrityError) -> None:
        """`stamp` is taken before the failed attempt, so a file changed during it is retried next time."""
        self._failures[(info.name, info.version)] = (stamp, error)

    def forget(self, info: VersionInfo) -> None:
        self._failures.pop((info.name, info.version), None)

    def recall(self, info: VersionInfo, stamp: Stamp) -> ArtifactIntegrityError | None:
        """A fresh copy of the remembered failure while nothing it depends on changed; else None.

        A copy, so that raising it again and again never grows one traceback."""
        remembered = self._failures.get((info.name, info.version))
        if remembered is None or remembered[0] != stamp:
            return None
        return copy.copy(remembered[1])
