"""Model artifacts on disk: `model.safetensors` + `manifest.json`, written durably and verified on read.

Weights are only ever read with safetensors (a plain tensor container): nothing is unpickled, so loading an
untrusted artifact cannot execute code.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch
from pydantic import ValidationError
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from app.errors import UnavailableError
from app.registry.manifest import MANIFEST_FORMAT, Manifest, WeightsRef, parse_manifest

WEIGHTS_FILE = "model.safetensors"
MANIFEST_FILE = "manifest.json"
ARTIFACT_FILES = (
    MANIFEST_FILE,
    WEIGHTS_FILE,
)  # what a version is: stored in the database, cached in its folder
INVALID_MANIFEST = "invalid manifest"


class ArtifactIntegrityError(UnavailableError):
    """An artifact that failed verification.

    `str(error)` is the full account, with the file's path: it goes to the log (and the CLI's local operator).
    `detail`, which HTTP answers show, names only what failed and the kind of failure (`kind`): a server's
    file layout is none of its clients' business. The registry, which knows the version, re-raises it as
    `identified(name, version)`.
    """

    title = "Model artifact failed verification"
    slug = "artifact-integrity"

    def __init__(
        self, message: str, *, kind: str = "invalid artifact", subject: str = "a model artifact"
    ) -> None:
        super().__init__(f"{subject} failed verification: {kind}")
        self.args = (message,)  # str(error): the full message, for the log
        self.kind = kind

    def identified(self, name: str, version: int) -> ArtifactIntegrityError:
        """The same failure, its `detail` naming the model version (and the problem body its fields)."""
        error = ArtifactIntegrityError(str(self), kind=self.kind, subject=f"model {name!r} version {version}")
        error.fields = {"name": name, "version": version}
        return error


def files_stamp(directory: Path) -> tuple[tuple[int, int, int, int] | None, ...]:
    """(size, mtime_ns, ctime_ns, inode) of each artifact file, None for a missing one: it changes whenever
    a file is written, replaced or removed, so a remembered verification failure can wait for that."""
    stamps: list[tuple[int, int, int, int] | None] = []
    for name in ARTIFACT_FILES:
        try:
            stat = (directory / name).stat()
        except OSError:
            stamps.append(None)
        else:
            stamps.append((stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino))
    return tuple(stamps)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _write_durably(path: Path, data: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def fsync_directory(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def manifest_bytes(manifest: Manifest) -> bytes:
    return json.dumps(manifest.to_json_dict(), indent=2, sort_keys=True, allow_nan=False).encode()


def write_artifact(directory: Path, tensors: dict[str, torch.Tensor], manifest: Manifest) -> dict[str, bytes]:
    """Write weights and manifest into `directory` (fsynced); returns each file's bytes by name."""
    weights = save_safetensors({key: value.detach().contiguous().cpu() for key, value in tensors.items()})
    manifest = manifest.model_copy(
        update={"weights": WeightsRef(file=WEIGHTS_FILE, sha256=sha256_bytes(weights))}
    )
    files = {WEIGHTS_FILE: weights, MANIFEST_FILE: manifest_bytes(manifest)}
    write_files(directory, files)
    return files


def write_files(directory: Path, files: dict[str, bytes]) -> None:
    """Write each file into `directory` durably (the files, then the folder, fsynced)."""
    for name, content in files.items():
        _write_durably(directory / name, content)
    fsync_directory(directory)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        kind = (
            f"{path.name} is missing"
            if isinstance(error, FileNotFoundError)
            else f"{path.name} is unreadable"
        )
        raise ArtifactIntegrityError(f"cannot read {path}: {error.strerror or error}", kind=kind) from error


def read_manifest(directory: Path, expected_sha256: str | None = None) -> Manifest:
    """Read, verify (sha256 when given), upgrade and validate a manifest; any failure is an integrity error."""
    raw = _read(directory / MANIFEST_FILE)
    if expected_sha256 is not None and sha256_bytes(raw) != expected_sha256:
        raise ArtifactIntegrityError(
            f"{directory / MANIFEST_FILE} was modified after publishing (sha256 mismatch)",
            kind="manifest sha256 mismatch",
        )
    try:
        manifest = json.loads(raw)
    except json.JSONDecodeError as error:
        raise ArtifactIntegrityError(
            f"{directory / MANIFEST_FILE} is not valid JSON: {error}", kind=INVALID_MANIFEST
        ) from error
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        raise ArtifactIntegrityError(
            f"{directory / MANIFEST_FILE} is not a {MANIFEST_FORMAT} manifest", kind=INVALID_MANIFEST
        )
    try:
        return parse_manifest(manifest)
    except ValidationError as error:
        raise ArtifactIntegrityError(
            f"{directory / MANIFEST_FILE} is not a valid manifest: {_describe(error)}", kind=INVALID_MANIFEST
        ) from error
    except ValueError as error:
        raise ArtifactIntegrityError(
            f"{directory / MANIFEST_FILE}: {error}", kind=INVALID_MANIFEST
        ) from error


def _describe(error: ValidationError, shown: int = 3) -> str:
    """`field.path: problem` for the first few invalid fields, and how many there are in all."""
    problems = [
        f"{'.'.join(str(part) for part in item['loc']) or '<root>'}: {item['msg']}" for item in error.errors()
    ]
    more = f" (and {len(problems) - shown} more)" if len(problems) > shown else ""
    return "; ".join(problems[:shown]) + more


def read_weights(directory: Path, manifest: Manifest) -> dict[str, torch.Tensor]:
    """Read and verify the weights against the manifest's sha256; refuse anything that is not safetensors."""
    path = directory / WEIGHTS_FILE
    raw = _read(path)
    expected = None if manifest.weights is None else manifest.weights.sha256
    if sha256_bytes(raw) != expected:
        raise ArtifactIntegrityError(
            f"{path} does not match its recorded sha256: tampered or truncated",
            kind="weights sha256 mismatch",
        )
    try:
        return load_safetensors(raw)
    except (SafetensorError, ValueError) as error:
        raise ArtifactIntegrityError(
            f"{path} is not a valid safetensors file: {error}",
            kind="weights are not a valid safetensors file",
        ) from error
