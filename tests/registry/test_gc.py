"""Leftovers of killed publishes: real publishing processes SIGKILL themselves at chosen moments (after writing
the staging folder, after committing the version), and numbered folders without a row (what older code left when
killed after claiming a number); then `tswatch models gc` or a server restart cleans up; no number is burned and
registered versions are never touched."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from app.registry.artifacts import WEIGHTS_FILE, read_manifest, read_weights
from app.registry.factory import open_registry
from app.registry.gc import DEFAULT_MIN_AGE_SECONDS, collect
from app.registry.layout import publish_lock
from app.settings import Settings

REPO = Path(__file__).resolve().parents[2]

# A publisher that kills itself with SIGKILL right after one step of `Registry.publish` returns.
PUBLISHER = """
import os, signal, sys
from pathlib import Path
import app.registry.store as store
from app.registry.artifacts import read_manifest, read_weights
from app.registry.factory import open_registry
from app.settings import Settings

source, target, name, moment = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], sys.argv[4]


def die_after(step):
    def wrapper(*args, **kwargs):
        step(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGKILL)
    return wrapper


if moment == "written":
    store.write_artifact = die_after(store.write_artifact)
elif moment == "committed":
    store.Registry._commit_version = die_after(store.Registry._commit_version)
manifest = read_manifest(source)
open_registry(Settings(models_dir=target)).publish(name, read_weights(source, manifest), manifest)
"""


def killed_publish(source: Path, target: Path, name: str, moment: str) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("TSWATCH_")}
    process = subprocess.run(
        [sys.executable, "-c", PUBLISHER, str(source), str(target), name, moment],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=120,
    )
    assert process.returncode == -signal.SIGKILL, process.stderr


def tree_digest(folder: Path) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def entries(model_dir: Path) -> set[str]:
    return {entry.name for entry in model_dir.iterdir()} - {".publish.lock"}


def backdate(model_dir: Path, seconds: float) -> None:
    stamp = time.time() - seconds
    for path in [*model_dir.rglob("*"), model_dir]:
        os.utime(path, (stamp, stamp), follow_symlinks=False)


def claimed_by_older_code(source: Path, folder: Path) -> None:
    """A numbered folder without a row: what a publish by older code (folder claimed before the row) left."""
    folder.parent.mkdir(exist_ok=True)
    shutil.copytree(source, folder)
    backdate(folder, 0)  # left just now: copytree kept the source's times (the session's tiny registry's)


@pytest.fixture
def crashed(models_dir: Path) -> dict[str, Any]:
    """`tiny` (v1, v2 registered) after a killed publish that left a complete staging folder and an unregistered
    folder 3 left by older code; and an unregistered folder 1 of `fresh`, a model with no row at all."""
    registry = open_registry(Settings(models_dir=models_dir))
    source = registry.get_version("tiny", 1).path
    registry.database.dispose()
    registered = {version: tree_digest(models_dir / "tiny" / str(version)) for version in (1, 2)}
    claimed_by_older_code(source, models_dir / "tiny" / "3")
    killed_publish(source, models_dir, "tiny", "written")
    claimed_by_older_code(source, models_dir / "fresh" / "1")
    tiny = entries(models_dir / "tiny")
    assert {"1", "2", "3"} <= tiny and len(tiny) == 4, tiny  # the staging folder; no number burned (no "4")
    assert [name for name in tiny if name.startswith(".staging-")]
    assert entries(models_dir / "fresh") == {"1"}
    return {"source": source, "registered": registered}


def assert_clean_and_next_is_3(models_dir: Path, registered: dict[int, dict[str, str]], source: Path) -> None:
    assert entries(models_dir / "tiny") == {"1", "2"}
    assert entries(models_dir / "fresh") == set()
    for version, digest in registered.items():
        assert tree_digest(models_dir / "tiny" / str(version)) == digest  # registered versions untouched
    registry = open_registry(Settings(models_dir=models_dir))
    try:
        manifest = read_manifest(source)
        info = registry.publish("tiny", read_weights(source, manifest), manifest)
        assert info.version == 3  # the number after the last registered version
        assert registry.load(info).version == 3
        assert registry.publish("fresh", read_weights(source, manifest), manifest).version == 1
        assert [info.version for info in registry.versions("tiny")] == [1, 2, 3]
    finally:
        registry.database.dispose()


def gc_json(run_cli: Callable[..., Any], models_dir: Path, *args: str) -> list[dict[str, Any]]:
    result = run_cli(models_dir, "models", "gc", "--json", *args)
    assert result.returncode == 0, result.stderr
    leftovers: list[dict[str, Any]] = json.loads(result.stdout)
    return leftovers


@pytest.mark.slow
def test_gc_command_lists_then_removes_only_leftovers(
    models_dir: Path, crashed: dict[str, Any], run_cli: Callable[..., Any]
) -> None:
    found = gc_json(run_cli, models_dir, "--dry-run", "--min-age", "0")
    kinds = sorted((item["model"], item["kind"], item["version"]) for item in found)
    assert kinds == [("fresh", "unregistered", 1), ("tiny", "staging", None), ("tiny", "unregistered", 3)]
    assert {item["action"] for item in found} == {"would remove"}
    assert {Path(item["path"]).name for item in found} <= entries(models_dir / "tiny") | {"1"}

    young = gc_json(run_cli, models_dir)  # default safety age: the crashes were just now
    assert {item["action"] for item in young} == {"kept: younger than the safety age"}

    with publish_lock(models_dir / "tiny"):  # a publish in progress in another process
        busy = gc_json(run_cli, models_dir, "--min-age", "0")
    assert {item["action"] for item in busy if item["model"] == "tiny"} == {
        "kept: a publish of this model is in progress"
    }
    assert {item["action"] for item in busy if item["model"] == "fresh"} == {"removed"}

    removed = gc_json(run_cli, models_dir, "--min-age", "0")
    assert sorted((item["kind"], item["action"]) for item in removed) == [
        ("staging", "removed"),
        ("unregistered", "removed"),
    ]
    assert gc_json(run_cli, models_dir, "--min-age", "0") == []
    table = run_cli(models_dir, "models", "gc")
    assert table.returncode == 0 and "No leftovers" in table.stdout
    assert_clean_and_next_is_3(models_dir, crashed["registered"], crashed["source"])


@pytest.mark.slow
def test_server_start_removes_leftovers_older_than_the_safety_age(
    models_dir: Path, crashed: dict[str, Any], server_factory: Callable[..., Any]
) -> None:
    backdate(models_dir / "tiny", 2 * DEFAULT_MIN_AGE_SECONDS)
    backdate(models_dir / "fresh", 2 * DEFAULT_MIN_AGE_SECONDS)
    server = server_factory(models_dir)  # ready: the cleanup ran while the services opened
    with server.client() as client:
        listed = client.get("/v1/models")
        assert listed.status_code == 200 and listed.json()[0]["name"] == "tiny", listed.text
    assert server.stop() == 0, server.log()
    assert_clean_and_next_is_3(models_dir, crashed["registered"], crashed["source"])


@pytest.mark.slow
def test_a_publish_killed_after_its_commit_loses_nothing(models_dir: Path) -> None:
    registry = open_registry(Settings(models_dir=models_dir))
    try:
        source = registry.get_version("tiny", 2).path
        killed_publish(source, models_dir, "tiny", "committed")
        assert registry.get_model("tiny").versions == [1, 2, 3]  # the rows are the commit point
        assert not (models_dir / "tiny" / "3").exists()  # killed before its folder was renamed into place
        assert [name for name in entries(models_dir / "tiny") if name.startswith(".staging-")]
        loaded = registry.load(registry.get_version("tiny", 3))  # copied from the database, verified
        assert loaded.version == 3
        assert (models_dir / "tiny" / "3" / WEIGHTS_FILE).read_bytes() == (source / WEIGHTS_FILE).read_bytes()
        manifest = read_manifest(source)
        info = registry.publish(
            "tiny", read_weights(source, manifest), manifest, alias="production", force=True
        )
        assert info.version == 4 and registry.load(info).version == 4
        removed = collect(registry, min_age_seconds=0)
        assert [(item.kind, item.action) for item in removed] == [("staging", "removed")]
        assert entries(models_dir / "tiny") == {"1", "2", "3", "4"}
    finally:
        registry.database.dispose()
