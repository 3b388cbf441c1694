"""End-to-end test of the Docker image: build offline, train into a volume, serve, hot-reload, stop.

The api and both trainings run through docker/compose.yaml (`up -d api`, `run --rm train`) with
`docker compose` (v2) or, failing that, the standalone `docker-compose` (1.28+). Without either,
the same flow runs with plain `docker run` and a loud warning.

Skips (loudly) only when no Docker engine can be started at all. Every container port is
published on 127.0.0.1 and every request goes to 127.0.0.1.
"""

from __future__ import annotations

import csv
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import httpx
import pytest

pytestmark = [pytest.mark.docker, pytest.mark.timeout(3600)]

REPO = Path(__file__).resolve().parents[2]
BASE_SCRIPT = REPO.parent / "shared" / "tools" / "docker-offline-base.sh"
BUILD_SCRIPT = REPO / "docker" / "build-offline.sh"
COMPOSE_FILE = REPO / "docker" / "compose.yaml"
DEMO_CSV = REPO / "app" / "demo" / "data" / "nyc_taxi.csv"
TAG = "tswatch:test"
MODEL = "nyc-taxi"
TRAIN_ARGS = ["--name", MODEL, "--epochs", "2", "--window", "48", "--horizon", "12"]


def run(
    cmd: list[str], timeout: float, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=REPO,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"command failed ({proc.returncode}): {' '.join(cmd)}\n"
            f"--- stdout (tail) ---\n{proc.stdout[-4000:]}\n--- stderr (tail) ---\n{proc.stderr[-4000:]}"
        )
    return proc


def shout(message: str) -> None:
    bar = "!" * 78
    print(f"\n{bar}\n{message}\n{bar}", file=sys.stderr, flush=True)


def skip_loudly(reason: str) -> NoReturn:
    message = f"THE DOCKER TESTS DID NOT RUN: {reason}"
    shout(message)
    pytest.skip(message)


def engine_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return run(["docker", "info"], timeout=60, check=False).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def find_compose() -> list[str] | None:
    """`docker compose` (v2) if it answers, else the standalone `docker-compose` (v1), else None."""
    try:
        if run(["docker", "compose", "version"], timeout=30, check=False).returncode == 0:
            return ["docker", "compose"]
    except subprocess.TimeoutExpired:
        pass
    legacy = shutil.which("docker-compose")
    if legacy is not None:
        try:
            if run([legacy, "version"], timeout=60, check=False).returncode == 0:
                return [legacy]
        except subprocess.TimeoutExpired:
            pass
    return None


@dataclass
class Compose:
    """docker/compose.yaml under a throw-away project, settings only from its own env file."""

    cli: list[str]
    project: str
    env_file: Path
    env: dict[str, str]

    def __call__(self, *args: str, timeout: float, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = [*self.cli, "-f", str(COMPOSE_FILE), "-p", self.project, "--env-file", str(self.env_file)]
        return run([*cmd, *args], timeout=timeout, check=check, env=self.env)

    def remove_leftovers(self) -> None:
        label = f"label=com.docker.compose.project={self.project}"
        ids = run(["docker", "ps", "-aq", "--filter", label], timeout=60, check=False).stdout.split()
        if ids:
            run(["docker", "rm", "-f", "-v", *ids], timeout=120, check=False)
        nets = run(
            ["docker", "network", "ls", "-q", "--filter", label], timeout=60, check=False
        ).stdout.split()
        if nets:
            run(["docker", "network", "rm", *nets], timeout=120, check=False)


@pytest.fixture(scope="module")
def compose_cli(docker_engine: None) -> list[str] | None:
    cli = find_compose()
    if cli is None:
        message = (
            "NEITHER `docker compose` (v2) NOR `docker-compose` IS AVAILABLE: docker/compose.yaml is NOT "
            "tested; the api and the training run with plain `docker run` instead "
            "(apt-get install docker-compose, or install the Compose v2 plugin)"
        )
        shout(message)
        warnings.warn(message, stacklevel=2)
    else:
        version = run([*cli, "version"], timeout=60, check=False).stdout.strip().splitlines()
        print(f"\n[docker] compose: {' '.join(cli)} ({version[0] if version else '?'})", file=sys.stderr)
    return cli


@pytest.fixture(scope="module")
def docker_engine() -> None:
    if engine_answers():
        return
    if not BASE_SCRIPT.is_file():
        skip_loudly(f"`docker info` fails and {BASE_SCRIPT} (which starts an engine) is absent")
    try:
        proc = run(["bash", str(BASE_SCRIPT)], timeout=1200, check=False)
    except subprocess.TimeoutExpired:
        skip_loudly(f"{BASE_SCRIPT} did not start a Docker engine within 20 minutes")
    if proc.returncode != 0 or not engine_answers():
        skip_loudly(
            f"the Docker engine could not be started ({BASE_SCRIPT} exited {proc.returncode}): "
            f"{(proc.stderr or proc.stdout)[-1500:]}"
        )


@pytest.fixture(scope="module")
def image(docker_engine: None) -> str:
    started = time.monotonic()
    env = {**os.environ, "PYTHON": os.environ.get("PYTHON", sys.executable)}
    run(["bash", str(BUILD_SCRIPT), TAG], timeout=3000, env=env)
    size = int(run(["docker", "image", "inspect", "-f", "{{.Size}}", TAG], timeout=60).stdout.strip())
    print(
        f"\n[docker] built {TAG} in {time.monotonic() - started:.0f}s; image size {size / 1e6:.0f} MB",
        file=sys.stderr,
        flush=True,
    )
    return TAG


@pytest.fixture(scope="module")
def volume(docker_engine: None, compose_cli: list[str] | None) -> Iterator[str]:
    name = f"tswatch-test-{uuid.uuid4().hex[:10]}"
    if compose_cli is None:
        run(["docker", "volume", "create", name], timeout=60)
    # else: compose creates it (TSWATCH_MODELS_VOLUME) and `down -v` deletes it.
    try:
        yield name
    finally:
        run(["docker", "volume", "rm", "-f", name], timeout=120, check=False)


@dataclass
class Api:
    container: str
    base_url: str
    volume: str
    image: str
    compose: Compose | None = None
    read_key: str = ""


def container_state(container: str) -> dict:
    proc = run(["docker", "inspect", "-f", "{{json .State}}", container], timeout=60)
    return json.loads(proc.stdout)


def packaged_csv(image: str) -> str:
    code = "import app, pathlib; print(pathlib.Path(app.__file__).parent / 'demo/data/nyc_taxi.csv')"
    return run(["docker", "run", "--rm", image, "python", "-c", code], timeout=300).stdout.strip()


@pytest.fixture(scope="module")
def api(
    image: str, volume: str, compose_cli: list[str] | None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Api]:
    if compose_cli is None:
        yield from api_with_docker_run(image, volume)
    else:
        yield from api_with_compose(image, volume, compose_cli, tmp_path_factory.mktemp("compose"))


def api_with_compose(image: str, volume: str, cli: list[str], workdir: Path) -> Iterator[Api]:
    data_dir = workdir / "data"  # TSWATCH_DATA_DIR: mounted read-only at /srv/data for `train`
    data_dir.mkdir()
    shutil.copy(DEMO_CSV, data_dir / DEMO_CSV.name)
    data_dir.chmod(0o755)  # the container user (uid 10001) reads it
    (data_dir / DEMO_CSV.name).chmod(0o644)
    port = free_port()
    settings = {
        "TSWATCH_IMAGE": image,
        "TSWATCH_MODELS_VOLUME": volume,
        "TSWATCH_PUBLISH_PORT": str(port),
        "TSWATCH_DATA_DIR": str(data_dir),
        "TSWATCH_ADMIN_KEY": secrets.token_hex(16),  # 32 chars, kept out of argv
        "TSWATCH_DEMO_ON_EMPTY": "false",
    }
    env_file = workdir / "compose.env"
    env_file.touch(mode=0o600)
    env_file.write_text("".join(f"{key}={value}\n" for key, value in settings.items()))
    # Only the env file configures compose: neither the caller's TSWATCH_*/COMPOSE_* variables
    # nor a developer's docker/.env leak into the test.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TSWATCH_", "COMPOSE_"))}
    compose = Compose(cli=cli, project=f"tswatchtest{uuid.uuid4().hex[:8]}", env_file=env_file, env=env)
    container = ""
    try:
        # Version 1, trained into the (new) volume before the server starts.
        compose("run", "--rm", "-T", "train", packaged_csv(image), *TRAIN_ARGS, timeout=900)
        compose("up", "-d", "api", timeout=300)
        container = compose("ps", "-q", "api", timeout=60).stdout.strip()
        assert container, "`compose ps -q api` names no container"
        wait_healthy(container, timeout=300)
        yield Api(
            container=container,
            base_url=f"http://127.0.0.1:{port}",
            volume=volume,
            image=image,
            compose=compose,
        )
    finally:
        if container:
            print_logs(container)
        compose("--profile", "train", "down", "-v", "--remove-orphans", "-t", "10", timeout=180, check=False)
        compose.remove_leftovers()


def api_with_docker_run(image: str, volume: str) -> Iterator[Api]:
    # Version 1, trained into the empty volume before the server starts.
    run(
        ["docker", "run", "--rm", "-v", f"{volume}:/models", image, "tswatch", "train", packaged_csv(image), *TRAIN_ARGS],
        timeout=900,
    )  # fmt: skip
    port = free_port()
    container = f"tswatch-test-{uuid.uuid4().hex[:10]}"
    env = {**os.environ, "TSWATCH_ADMIN_KEY": secrets.token_hex(16)}  # 32 chars, kept out of argv
    run(
        [
            "docker", "run", "-d", "--name", container,
            "-p", f"127.0.0.1:{port}:8000",
            "-v", f"{volume}:/models",
            "-e", "TSWATCH_ADMIN_KEY",
            "-e", "TSWATCH_DEMO_ON_EMPTY=false",
            image,
        ],
        timeout=120,
        env=env,
    )  # fmt: skip
    try:
        wait_healthy(container, timeout=300)
        yield Api(container=container, base_url=f"http://127.0.0.1:{port}", volume=volume, image=image)
    finally:
        print_logs(container)
        run(["docker", "rm", "-f", "-v", container], timeout=120, check=False)


def print_logs(container: str) -> None:
    logs = run(["docker", "logs", "--tail", "60", container], timeout=60, check=False)
    print(f"\n[docker] last api logs:\n{logs.stdout[-3000:]}{logs.stderr[-3000:]}", file=sys.stderr)


def wait_healthy(container: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    state: dict = {}
    while time.monotonic() < deadline:
        state = container_state(container)
        if not state.get("Running"):
            logs = run(["docker", "logs", "--tail", "80", container], timeout=60, check=False)
            pytest.fail(f"the api container exited ({state.get('ExitCode')}):\n{logs.stdout}{logs.stderr}")
        if (state.get("Health") or {}).get("Status") == "healthy":
            return
        time.sleep(2)
    logs = run(["docker", "logs", "--tail", "80", container], timeout=60, check=False)
    pytest.fail(
        f"the api container was not healthy after {timeout:.0f}s: {json.dumps(state.get('Health'))[-2000:]}\n"
        f"{logs.stdout}{logs.stderr}"
    )


def series_payload(points: int = 240) -> dict:
    with DEMO_CSV.open(newline="") as fh:
        rows = list(csv.DictReader(fh))[-points:]
    return {
        "id": "taxi",
        "values": [float(row["value"]) for row in rows],
        "timestamps": [row["timestamp"].replace(" ", "T") for row in rows],
    }


def headers(api: Api) -> dict[str, str]:
    if not api.read_key:
        proc = run(
            ["docker", "exec", api.container, "tswatch", "keys", "create", "--role", "read", "--json"], 120
        )
        api.read_key = json.loads(proc.stdout[proc.stdout.index("{") :])["key"]
    return {"Authorization": f"Bearer {api.read_key}"}


def forecast(api: Api, horizon: int = 12) -> dict:
    response = httpx.post(
        f"{api.base_url}/v1/models/{MODEL}/forecast",
        json={"series": [series_payload()], "horizon": horizon},
        headers=headers(api),
        timeout=60,
    )
    assert response.status_code == 200, response.text
    return response.json()


def test_health_endpoints(api: Api) -> None:
    assert httpx.get(f"{api.base_url}/healthz", timeout=10).status_code == 200
    assert httpx.get(f"{api.base_url}/readyz", timeout=10).status_code == 200


def test_requests_need_a_key(api: Api) -> None:
    response = httpx.post(
        f"{api.base_url}/v1/models/{MODEL}/forecast", json={"series": [series_payload()]}, timeout=60
    )
    assert response.status_code == 401, response.text


def test_forecast_and_detect(api: Api) -> None:
    body = forecast(api, horizon=12)
    assert body["model"]["name"] == MODEL
    assert body["model"]["version"] == 1
    [series] = body["forecasts"]
    assert series["id"] == "taxi"
    assert len(series["mean"]) == 12
    assert series["intervals"], body
    for interval in series["intervals"]:
        assert len(interval["lower"]) == len(interval["upper"]) == 12

    payload = series_payload()
    response = httpx.post(
        f"{api.base_url}/v1/models/{MODEL}/detect",
        json={"series": [payload]},
        headers=headers(api),
        timeout=60,
    )
    assert response.status_code == 200, response.text
    detection = response.json()
    assert detection["model"]["version"] == 1
    [result] = detection["results"]
    assert result["id"] == "taxi"
    assert len(result["points"]) == len(payload["values"])
    assert result["anomalies"] == sum(point["is_anomaly"] for point in result["points"])


def train_new_version_with_alias(api: Api) -> None:
    if api.compose is not None:
        # The documented flow: the file sits in TSWATCH_DATA_DIR, mounted at /srv/data.
        args = [f"/srv/data/{DEMO_CSV.name}", *TRAIN_ARGS, "--alias", "production", "--force"]
        proc = api.compose("run", "--rm", "-T", "train", *args, timeout=900)
        print(f"\n[docker] compose run train:\n{proc.stdout[-1500:]}", file=sys.stderr)
    else:
        message = (
            "no compose: trained the new version with `docker run` instead of the compose `train` service"
        )
        shout(message)
        warnings.warn(message, stacklevel=2)
        args = [packaged_csv(api.image), *TRAIN_ARGS, "--alias", "production", "--force"]
        run(
            ["docker", "run", "--rm", "-v", f"{api.volume}:/models", api.image, "tswatch", "train", *args],
            timeout=900,
        )


def test_new_version_is_served_after_training(api: Api) -> None:
    train_new_version_with_alias(api)
    deadline = time.monotonic() + 30
    detail: dict = {}
    served = None
    while time.monotonic() < deadline:
        response = httpx.get(f"{api.base_url}/v1/models/{MODEL}", headers=headers(api), timeout=30)
        assert response.status_code == 200, response.text
        detail = response.json()
        served = forecast(api)["model"]["version"]
        if served == 2:
            break
        time.sleep(1)
    assert served == 2, f"the api still serves version {served} 30 s after training: {detail}"
    assert detail["aliases"].get("production") == 2, detail
    assert 2 in detail["versions"], detail


def test_runs_as_non_root(api: Api) -> None:
    uid = run(["docker", "exec", api.container, "id", "-u"], timeout=60).stdout.strip()
    assert uid != "0"
    assert uid == "10001"


def test_graceful_stop(api: Api) -> None:
    started = time.monotonic()
    run(["docker", "stop", "-t", "10", api.container], timeout=60)
    elapsed = time.monotonic() - started
    state = container_state(api.container)
    assert not state["Running"]
    assert state["ExitCode"] in (0, 143), f"exit code {state['ExitCode']} after {elapsed:.1f}s (137 = killed)"
    size = int(run(["docker", "image", "inspect", "-f", "{{.Size}}", api.image], timeout=60).stdout.strip())
    print(f"\n[docker] stopped in {elapsed:.1f}s; image {api.image} is {size / 1e6:.0f} MB", file=sys.stderr)
