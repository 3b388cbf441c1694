"""Artifacts are verified on load: tampering, truncation, edited manifests and pickles are refused."""

import io
import json
import pickle
from pathlib import Path

import pytest
import torch
from sqlalchemy import update

from app.errors import UnavailableError
from app.registry.artifacts import (
    MANIFEST_FILE,
    WEIGHTS_FILE,
    ArtifactIntegrityError,
    read_manifest,
    read_weights,
    sha256_bytes,
)
from app.registry.factory import open_registry
from app.settings import Settings
from app.storage.tables.registry import VersionRow


class TouchOnUnpickle:
    """A pickle payload: unpickling it calls Path(marker).touch(), i.e. runs code chosen by the file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


@pytest.fixture
def registry(models_dir):
    registry = open_registry(Settings(models_dir=models_dir))
    yield registry
    registry.database.dispose()


def stored_manifest(directory: Path) -> dict:
    return json.loads((directory / MANIFEST_FILE).read_bytes())


def write_manifest(directory: Path, manifest: dict) -> str:
    encoded = json.dumps(manifest, indent=2, sort_keys=True).encode()  # a forgery: raw JSON, not a Manifest
    (directory / MANIFEST_FILE).write_bytes(encoded)
    return sha256_bytes(encoded)


def update_row(registry, name: str, version: int, **values) -> None:
    with registry.database.session() as session:
        session.execute(
            update(VersionRow)
            .where(VersionRow.model_name == name, VersionRow.version == version)
            .values(**values)
        )


def replace_weights(registry, info, payload: bytes, *, manifest=True, db_manifest=True, db_weights=True):
    """Put `payload` in place of model.safetensors and (optionally) re-sign it everywhere a hash is kept."""
    (info.path / WEIGHTS_FILE).write_bytes(payload)
    payload_sha = sha256_bytes(payload)
    if manifest:
        stored = stored_manifest(info.path)
        stored["weights"]["sha256"] = payload_sha
        manifest_sha = write_manifest(info.path, stored)
        if db_manifest:
            update_row(registry, info.name, info.version, manifest_sha256=manifest_sha)
    if db_weights:
        update_row(registry, info.name, info.version, weights_sha256=payload_sha)
    return registry.get_version(info.name, info.version)


def assert_other_version_still_loads(registry) -> None:
    loaded = registry.load(registry.resolve("tiny", version=2))
    assert loaded.version == 2


def test_untouched_artifact_loads(registry):
    info = registry.resolve("tiny")
    assert info.version == 1
    assert registry.load(info).forecaster.spec.window == 24


def test_a_flipped_byte_in_the_weights_is_refused(registry):
    info = registry.resolve("tiny", version=1)
    path = info.path / WEIGHTS_FILE
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit inside the tensor data: still a parseable safetensors file
    path.write_bytes(bytes(data))

    with pytest.raises(
        ArtifactIntegrityError, match=r"model\.safetensors does not match its recorded sha256"
    ) as caught:
        registry.load(info)
    assert "tampered or truncated" in str(caught.value)  # the full account, for the log
    assert caught.value.detail == "model 'tiny' version 1 failed verification: weights sha256 mismatch"
    assert str(info.path) not in caught.value.detail  # what an HTTP answer shows names no path
    assert isinstance(caught.value, UnavailableError)
    assert_other_version_still_loads(registry)


def test_a_truncated_weights_file_is_refused(registry):
    info = registry.resolve("tiny", version=1)
    path = info.path / WEIGHTS_FILE
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])

    with pytest.raises(ArtifactIntegrityError, match="tampered or truncated"):
        registry.load(info)
    assert_other_version_still_loads(registry)


def test_a_truncated_weights_file_is_refused_even_with_every_hash_updated(registry):
    info = registry.resolve("tiny", version=1)
    data = (info.path / WEIGHTS_FILE).read_bytes()
    info = replace_weights(registry, info, data[: len(data) - 100])

    with pytest.raises(ArtifactIntegrityError, match="is not a valid safetensors file"):
        registry.load(info)


def test_an_empty_or_missing_weights_file_is_refused(registry):
    info = registry.resolve("tiny", version=1)
    (info.path / WEIGHTS_FILE).unlink()
    with pytest.raises(ArtifactIntegrityError, match=r"cannot read .*model\.safetensors"):
        registry.load(info)


def test_a_modified_manifest_is_refused(registry):
    info = registry.resolve("tiny", version=1)
    manifest = stored_manifest(info.path)
    manifest["spec"]["network"]["hidden_size"] = 32
    write_manifest(info.path, manifest)

    with pytest.raises(ArtifactIntegrityError, match=r"manifest\.json was modified after publishing"):
        registry.load(info)
    with pytest.raises(ArtifactIntegrityError, match="modified after publishing"):
        registry.read_manifest(info)
    assert_other_version_still_loads(registry)


def test_a_modified_manifest_with_its_hash_updated_still_does_not_rebuild(registry):
    """Even a consistent forgery of the architecture fails: the weights do not fit the declared network."""
    info = registry.resolve("tiny", version=1)
    manifest = stored_manifest(info.path)
    manifest["spec"]["network"]["hidden_size"] = 32
    update_row(registry, "tiny", 1, manifest_sha256=write_manifest(info.path, manifest))
    info = registry.get_version("tiny", 1)

    with pytest.raises(ArtifactIntegrityError, match="does not rebuild into its declared network"):
        registry.load(info)


def test_a_manifest_naming_other_weights_than_the_registry_row_is_refused(registry):
    info = registry.resolve("tiny", version=1)
    v2 = registry.resolve("tiny", version=2)
    # copy v2's weights and manifest entry into v1 and re-sign only the manifest
    (info.path / WEIGHTS_FILE).write_bytes((v2.path / WEIGHTS_FILE).read_bytes())
    manifest = stored_manifest(info.path)
    manifest["weights"]["sha256"] = v2.weights_sha256
    update_row(registry, "tiny", 1, manifest_sha256=write_manifest(info.path, manifest))

    with pytest.raises(ArtifactIntegrityError, match="tiny v1 names other weights than the registry"):
        registry.load(registry.get_version("tiny", 1))


def torch_pickle(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("resign", "message"),
    [
        ({"manifest": True, "db_manifest": False, "db_weights": False}, "modified after publishing"),
        (
            {"manifest": True, "db_manifest": True, "db_weights": False},
            "names other weights than the registry",
        ),
        ({"manifest": True, "db_manifest": True, "db_weights": True}, "is not a valid safetensors file"),
    ],
    ids=["manifest-resigned", "manifest-and-db-manifest-resigned", "everything-resigned"],
)
def test_a_pickled_state_dict_in_place_of_safetensors_is_refused(registry, resign, message):
    info = registry.resolve("tiny", version=1)
    state_dict = registry.load(info).forecaster.network.state_dict()
    info = replace_weights(registry, info, torch_pickle(state_dict), **resign)

    with pytest.raises(ArtifactIntegrityError, match=message):
        registry.load(info)
    assert_other_version_still_loads(registry)


def test_the_pickle_check_is_the_format_check_itself(registry):
    """With every hash consistent, `read_weights` alone refuses a torch.save file."""
    info = registry.resolve("tiny", version=1)
    state_dict = registry.load(info).forecaster.network.state_dict()
    info = replace_weights(registry, info, torch_pickle(state_dict))
    manifest = read_manifest(info.path, info.manifest_sha256)
    with pytest.raises(ArtifactIntegrityError, match=r"model\.safetensors is not a valid safetensors file"):
        read_weights(info.path, manifest)


@pytest.mark.parametrize("container", ["raw-pickle", "torch-save"])
def test_loading_a_malicious_pickle_executes_nothing(registry, tmp_path, container):
    # control: the payload really runs code when unpickled
    control = tmp_path / "control-marker"
    pickle.loads(pickle.dumps(TouchOnUnpickle(control)))
    assert control.exists()

    marker = tmp_path / "pwned-marker"
    evil = TouchOnUnpickle(marker)
    payload = pickle.dumps(evil) if container == "raw-pickle" else torch_pickle({"rnn.weight_ih_l0": evil})
    assert not marker.exists()
    info = replace_weights(registry, registry.resolve("tiny", version=1), payload)

    with pytest.raises(ArtifactIntegrityError, match="is not a valid safetensors file"):
        registry.load(info)
    with pytest.raises(ArtifactIntegrityError):
        read_weights(info.path, read_manifest(info.path))
    assert not marker.exists(), "loading the artifact unpickled it"
    assert_other_version_still_loads(registry)
