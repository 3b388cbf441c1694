#!/usr/bin/env bash
# Builds the tswatch image without network access inside the build.
#
#   docker/build-offline.sh [TAG]          (default TAG: tswatch:latest)
#
# 1. Fills ./wheelhouse (repo root) with wheels for Python 3.11 / linux x86_64: the CPU-only
#    torch wheel, every runtime dependency of the project, and the build backend (setuptools,
#    wheel) so the project itself can be built from source inside the image.
# 2. Makes sure the base image python:3.11-slim exists (runs ../shared/tools/docker-offline-base.sh
#    when it is missing and that script is present). This is checked first: when neither the engine
#    and image nor the helper are there, the script says what is missing and how to fix it, and
#    exits 3 before downloading anything.
# 3. Runs `docker build --network none`; the Dockerfile switches to `--no-index --find-links`
#    by itself when it finds wheels in the build context.
#
# Environment knobs:
#   PYTHON            interpreter whose pip downloads the wheels (default: python3)
#   TORCH_SPEC        torch requirement (default: torch==2.13.0). Must resolve to a +cpu wheel.
#   TORCH_INDEX_ARGS  extra pip args for the torch download, e.g.
#                     "--extra-index-url https://download.pytorch.org/whl/cpu" on a connected
#                     machine that has no local CPU wheel.
#   DOCKER_BUILD_ARGS extra args for `docker build` (word-split).
#   BASE_IMAGE_SCRIPT the base-image helper (default: ../shared/tools/docker-offline-base.sh beside
#                     the repository): starts the engine and builds the python:3.11-slim stand-in.
# Exit codes: 0 built; 3 no Docker engine or base image and no helper to provide them; other: the
# failing step's (pip, docker build).
# Idempotent: wheels already in ./wheelhouse are reused; Docker's layer cache does the rest.
set -euo pipefail

tag=${1:-tswatch:latest}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
cd "$root"

python=${PYTHON:-python3}
base_image=python:3.11-slim
base_script=${BASE_IMAGE_SCRIPT:-$root/../shared/tools/docker-offline-base.sh}

missing_base() {
  cat >&2 <<MSG
build-offline: $1, and the base-image helper is missing:
  $base_script
The helper starts the Docker engine and builds a $base_image stand-in without network access.
Fix one of:
  - start a Docker engine (dockerd / Docker Desktop) and, on a machine with network access, run
    'docker pull $base_image' (or 'docker load' a saved copy of it), then run this script again;
  - point BASE_IMAGE_SCRIPT at the helper if it lives elsewhere.
Nothing was downloaded or built.
MSG
  exit 3
}

# Checked before the (long) wheel downloads: without an engine and base image nothing can be built.
if ! docker info >/dev/null 2>&1; then
  [ -f "$base_script" ] || missing_base "no Docker engine answers ('docker info' fails)"
elif ! docker image inspect "$base_image" >/dev/null 2>&1 && [ ! -f "$base_script" ]; then
  echo "build-offline: $base_image is not present; pulling it (needs network access)"
  docker pull "$base_image" >/dev/null || missing_base "the base image $base_image is not present and cannot be pulled"
fi
torch_spec=${TORCH_SPEC:-torch==2.13.0}
wheelhouse=$root/wheelhouse
mkdir -p "$wheelhouse"
# The project is built from source inside the image; a stale project wheel here would only confuse.
rm -f "$wheelhouse"/tswatch-*.whl

# Wheels must fit the image (CPython 3.11, glibc >= 2.28 on x86_64), whatever the host is.
target=(--only-binary=:all: --implementation cp --python-version 3.11 --abi cp311 --abi abi3 --abi none
  --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 --platform linux_x86_64 --platform any)

# The host's pip config may list local index folders that lack most projects; pip then warns
# once per project. Keep pip's real errors, drop that noise.
pip_download() {
  "$python" -m pip download --disable-pip-version-check --quiet "$@" \
    2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
}

start=$SECONDS
echo "build-offline: downloading $torch_spec (CPU build) into wheelhouse/"
# shellcheck disable=SC2086 # TORCH_INDEX_ARGS is a list of pip arguments
pip_download --no-deps --dest "$wheelhouse" \
  "${target[@]}" ${TORCH_INDEX_ARGS:-} "$torch_spec"

torch_version=$("$python" - "$wheelhouse" "$torch_spec" <<'EOF'
import pathlib, sys
try:
    from packaging.requirements import Requirement
    from packaging.utils import parse_wheel_filename
except ImportError:  # pip vendors packaging
    from pip._vendor.packaging.requirements import Requirement
    from pip._vendor.packaging.utils import parse_wheel_filename
req = Requirement(sys.argv[2])
found = []
for path in pathlib.Path(sys.argv[1]).glob("torch-*.whl"):
    _, version, _, _ = parse_wheel_filename(path.name)
    if req.specifier.contains(version, prereleases=True):
        found.append(version)
if not found:
    sys.exit(f"build-offline: no wheel in wheelhouse/ matches {req}")
best = max(found)
if best.local != "cpu":
    sys.exit(f"build-offline: torch {best} is not the CPU build (it would pull GBs of CUDA wheels); "
             "set TORCH_INDEX_ARGS='--extra-index-url https://download.pytorch.org/whl/cpu'")
print(best)
EOF
)
echo "build-offline: torch $torch_version"

requirements=$(mktemp)
trap 'rm -f "$requirements"' EXIT
"$python" - pyproject.toml >"$requirements" <<'EOF'
import sys, tomllib
with open(sys.argv[1], "rb") as fh:
    project = tomllib.load(fh)
print("\n".join(project["project"]["dependencies"]))
print("\n".join(project["build-system"]["requires"]))
EOF

echo "build-offline: downloading the project's dependencies into wheelhouse/"
# The exact torch pin keeps the resolver on the CPU wheel already in the wheelhouse.
pip_download --dest "$wheelhouse" \
  --find-links "$wheelhouse" "${target[@]}" "torch==$torch_version" -r "$requirements"
echo "build-offline: wheelhouse ready ($(find "$wheelhouse" -name '*.whl' | wc -l) wheels, $(du -sh "$wheelhouse" | cut -f1)) in $((SECONDS - start))s"

if ! docker info >/dev/null 2>&1 || ! docker image inspect "$base_image" >/dev/null 2>&1; then
  # Only reached with the helper present (checked at the start).
  echo "build-offline: starting the Docker engine / building the $base_image stand-in"
  bash "$base_script"
fi

echo "build-offline: docker build -t $tag (no network)"
build_start=$SECONDS
# shellcheck disable=SC2086 # DOCKER_BUILD_ARGS is a list of arguments
docker build --network none --build-arg "TORCH_VERSION=$torch_version" ${DOCKER_BUILD_ARGS:-} \
  -t "$tag" -f Dockerfile .
size=$(docker image inspect -f '{{.Size}}' "$tag")
echo "build-offline: built $tag in $((SECONDS - build_start))s; image size $((size / 1000000)) MB ($size bytes)"
