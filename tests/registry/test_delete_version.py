"""Deleting a model version: refused while an alias points at it, its rows, stored files and folder removed, its
number never given again, and crash-safe (a deleter SIGKILLed after the commit leaves only a folder that
`tswatch models gc` removes)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from app.registry.factory import open_registry
from app.registry.gc import collect
from app.registry.store import Registry, VersionInUseError, VersionNotFoundError
from app.registry.stored import has_files
from app.settings import Settings
from app.storage.tables.registry import ArtifactRow
from tests.registry.test_store import publish

REPO = Path(__file__).resolve().parents[2]

# Deletes a version and kills itself with SIGKILL right after the database commit, before the folder is removed.
DELETER = """
import os, signal, sys
from pathlib import Path
import app.registry.store as store
from app.registry.factory import open_registry
from app.settings import Settings

def crash(path):
    os.kill(os.getpid(), signal.SIGKILL)

store.discard = crash
open_registry(Settings(models_dir=Path(sys.argv[1]))).delete_version(sys.argv[2], int(sys.argv[3]))
"""


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    opened = open_registry(Settings(models_dir=tmp_path / "registry"))
    yield opened
    opened.database.dispose()


def stored_versions(registry: Registry, name: str) -> list[int]:
    with registry.database.session() as session:
        rows = session.scalars(select(ArtifactRow.version).where(ArtifactRow.model_name == name)).all()
    return sorted(set(rows))


def test_delete_removes_row_files_and_folder_and_never_reuses_the_number(registry: Registry) -> None:
    infos = [publish(registry, seed=seed) for seed in range(3)]

    registry.delete_version("demo", 3)

    assert [v.version for v in registry.versions("demo")] == [1, 2]
    assert stored_versions(registry, "demo") == [1, 2]
    assert not has_files(registry.database, "demo", 3)
    assert not infos[2].path.exists()
    assert not any(entry.name.startswith(".trash-") for entry in infos[2].path.parent.iterdir())
    with pytest.raises(VersionNotFoundError):
        registry.get_version("demo", 3)
    assert registry.resolve("demo").version == 2  # the default (no production alias) moves to the latest

    assert publish(registry, seed=7).version == 4  # 3 was deleted: never registered again
    registry.delete_version("demo", 1)
    assert publish(registry, seed=8).version == 5
    assert [v.version for v in registry.versions("demo")] == [2, 4, 5]


def test_delete_is_refused_while_an_alias_points_at_the_version(registry: Registry) -> None:
    publish(registry, seed=0, alias="production")
    publish(registry, seed=1)
    registry.set_alias("demo", "staging", 1)

    with pytest.raises(VersionInUseError) as refused:
        registry.delete_version("demo", 1)

    assert refused.value.status == 409
    assert "'production', 'staging'" in refused.value.detail
    assert refused.value.fields["aliases"] == ["production", "staging"]
    assert [v.version for v in registry.versions("demo")] == [1, 2]
    assert registry.load(registry.get_version("demo", 1)).version == 1  # untouched
    registry.delete_alias("demo", "staging")
    registry.set_alias("demo", "production", 2)
    registry.delete_version("demo", 1)
    assert [v.version for v in registry.versions("demo")] == [2]


def test_unknown_versions_and_aliases_to_deleted_versions_are_404s(registry: Registry) -> None:
    publish(registry, seed=0)
    publish(registry, seed=1)
    registry.delete_version("demo", 2)

    for action in (
        lambda: registry.delete_version("demo", 2),
        lambda: registry.delete_version("demo", 9),
        lambda: registry.set_alias("demo", "production", 2),
    ):
        with pytest.raises(VersionNotFoundError):
            action()


def test_a_deleter_killed_after_the_commit_leaves_a_folder_gc_removes(registry: Registry) -> None:
    infos = [publish(registry, seed=seed) for seed in range(2)]
    registry.database.dispose()  # the deleter opens its own connections

    killed = subprocess.run(
        [sys.executable, "-c", DELETER, str(registry.root), "demo", "2"], cwd=REPO, capture_output=True
    )

    assert killed.returncode == -9, killed.stderr
    assert [v.version for v in registry.versions("demo")] == [1]  # the commit point was passed
    assert stored_versions(registry, "demo") == [1]
    assert infos[1].path.is_dir()  # the local copy is a leftover now
    leftovers = collect(registry, min_age_seconds=0)
    assert [(leftover.kind, leftover.version, leftover.action) for leftover in leftovers] == [
        ("unregistered", 2, "removed")
    ]
    assert not infos[1].path.exists()
    assert registry.load(infos[0]).version == 1
    assert publish(registry, seed=5).version == 3


def test_a_delete_failing_before_the_commit_changes_nothing(
    registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    info = publish(registry, seed=0)

    def broken(*args: object) -> None:
        raise RuntimeError("database went away")

    monkeypatch.setattr("app.registry.store.delete_files", broken)
    with pytest.raises(RuntimeError):
        registry.delete_version("demo", 1)

    assert [v.version for v in registry.versions("demo")] == [1]
    assert has_files(registry.database, "demo", 1)
    assert registry.load(info).version == 1
