"""`docker/build-offline.sh` explains itself and exits 3, before downloading anything, when the Docker engine or
the base image is missing and so is the base-image helper that would provide them (a stub `docker` on PATH)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO / "docker" / "build-offline.sh"

NO_ENGINE = "#!/bin/sh\nexit 1\n"
NO_IMAGE = '#!/bin/sh\n[ "$1" = info ] && exit 0\necho "pull access denied" >&2\nexit 1\n'


@pytest.mark.parametrize(
    ("docker", "reason"),
    [
        (NO_ENGINE, "no Docker engine answers"),
        (NO_IMAGE, "python:3.11-slim is not present and cannot be pulled"),
    ],
)
def test_a_missing_base_image_helper_is_explained(tmp_path: Path, docker: str, reason: str) -> None:
    stub = tmp_path / "bin" / "docker"
    stub.parent.mkdir()
    stub.write_text(docker)
    stub.chmod(0o755)
    helper = tmp_path / "absent" / "docker-offline-base.sh"
    env = {
        **os.environ,
        "PATH": f"{stub.parent}:/usr/bin:/bin",
        "BASE_IMAGE_SCRIPT": str(helper),
        "PYTHON": "false",  # any wheel download would fail: none may start
    }
    result = subprocess.run(
        ["bash", str(BUILD_SCRIPT), "tswatch:test"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 3, result.stderr
    assert reason in result.stderr
    assert "base-image helper is missing" in result.stderr and str(helper) in result.stderr
    assert "docker pull python:3.11-slim" in result.stderr
    assert "downloading" not in result.stdout
