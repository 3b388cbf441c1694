"""Abuse replay (issue 13): every attack of the hardening list against one real `tswatch serve`, one table row each.

Trains a tiny model `bench` into a temporary registry and registers a copy, `broken`, whose weights it then
corrupts; creates an admin, a write and a read key and two inbound signing secrets with the real CLI, starts
`tswatch serve` on 127.0.0.1 and replays:

 1  slow webhooks: 8 receivers trickling one header line every 0.5 s (3 pings queued each) + 1 healthy receiver;
    an alarm opens; how long the healthy receiver waits for it
 2  one /detect of 200,000 points with a read key (2x4: four at once; --quick: one of 20,000)
 3  forecast bodies nested 1,000 deep and holding a 5,000-digit integer
 4  slowloris: many connections with a partial header, and one body trickled a byte a second
 5  two inbound-hook senders with different secrets and the same webhook-id
 6  appends to 20,000 distinct nonexistent stream ids (the server's RSS growth)
 7  GET /readyz and a forecast with a corrupt model version (absolute paths in the bodies?)
 8  POST /v1/webhooks with http://user:password@host/ (password echoed?)
 9  kill -9 of a `tswatch train` during its publish, then orphans, `tswatch models gc`, the next version number
 10 an unauthenticated 4 MB body (401 before reading it?); "1.5"/true as values; a malformed request line

For every row: HTTP statuses seen, seconds, the server's RSS change (server + children, /proc VmRSS; after the
attack and at its peak), and the worst latency of /healthz and of a single-point stream append, both probed
every 0.2 s while the attack runs. The bench reports what the server does; a failing server is a row, not a
crash. All traffic goes to 127.0.0.1; every loop is bounded; every process and socket is stopped at the end.

    python bench/abuse.py [--port P] [--quick] [--json] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import secrets
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
START = datetime(2024, 1, 1)
FAST_MS = 100.0  # issue 13's target for a concurrent single-point append
PROBE_INTERVAL = 0.2
PROBE_TIMEOUT = 10.0
HEADER_TIMEOUT = 3.0
BODY_TIMEOUT = 6.0
WEBHOOK_TIMEOUT = 3.0

# (id, name): the table's rows, in order. `2x4` runs only without --quick.
ATTACKS: tuple[tuple[str, str], ...] = (
    ("1", "slow webhook receivers"),
    ("2", "huge /detect"),
    ("2x4", "huge /detect, 4 at once"),
    ("3", "deep JSON / huge integer"),
    ("4", "slowloris"),
    ("5", "inbound hook id clash"),
    ("6", "appends to unknown ids"),
    ("7", "corrupt model: paths"),
    ("8", "webhook URL password"),
    ("9", "kill -9 during publish"),
    ("10a", "unauthenticated big body"),
    ("10b", "string/bool values"),
    ("10c", "malformed request line"),
)
QUICK_SKIP = frozenset({"2x4"})


@dataclass(frozen=True)
class Scale:
    detect_points: int
    detect_timeout: float
    slowloris_connections: int
    max_connections: int
    slowloris_window: float
    ghost_ids: int
    ghost_seconds: float
    webhook_wait: float

    @classmethod
    def of(cls, quick: bool) -> Scale:
        if quick:
            return cls(20_000, 60.0, 150, 100, 12.0, 2_000, 30.0, 15.0)
        return cls(200_000, 240.0, 300, 200, 20.0, 20_000, 180.0, 40.0)


# ------------------------------------------------------------------------------------------------ data
def hourly_values(count: int, seed: int = 0, offset: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    hours = np.arange(offset, offset + count)
    return np.round(10.0 + 3.0 * np.sin(2 * np.pi * hours / 24) + rng.normal(0, 0.3, count), 3)


def stamp(hour: int) -> str:
    return (START + timedelta(hours=hour)).isoformat() + "Z"


def points(count: int, offset: int = 0, spike_at: int | None = None, seed: int = 0) -> list[dict[str, Any]]:
    values = hourly_values(count, seed, offset)
    if spike_at is not None:
        values[spike_at] += 60.0
    return [{"timestamp": stamp(offset + i), "value": float(v)} for i, v in enumerate(values)]


def write_csv(path: Path, count: int = 900) -> Path:
    frame = pd.DataFrame({"timestamp": pd.date_range(START, periods=count, freq="h")})
    frame["value"] = hourly_values(count)
    frame.to_csv(path, index=False)
    return path


# ------------------------------------------------------------------------------------------------ processes
def cli_env(models_dir: Path, **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("TSWATCH_")}
    env.update({"TSWATCH_MODELS_DIR": str(models_dir), "TSWATCH_TORCH_THREADS": "1", **extra})
    return env


def cli(models_dir: Path, *args: str, timeout: float = 180.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.cli.main", *args],
        env=cli_env(models_dir),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
    )


def cli_json(models_dir: Path, *args: str) -> dict[str, Any]:
    result = cli(models_dir, *args, "--json")
    if result.returncode != 0:
        raise RuntimeError(f"tswatch {' '.join(args)} failed: {result.stderr[-2000:]}")
    document: dict[str, Any] = json.loads(result.stdout)
    return document


def train_args(csv: Path, name: str, epochs: int) -> list[str]:
    return [
        "train", str(csv), "--name", name, "--time-col", "timestamp", "--value-col", "value",
        "--window", "24", "--horizon", "6", "--hidden", "16", "--layers", "1",
        "--epochs", str(epochs), "--patience", "2", "--batch-size", "64", "--alias", "production", "--force",
    ]  # fmt: skip


def descendants(pid: int) -> list[int]:
    """`pid` and every process below it (Linux /proc)."""
    found: list[int] = []
    queue = [pid]
    while queue and len(found) < 256:
        current = queue.pop()
        found.append(current)
        with suppress(OSError):
            for task in Path(f"/proc/{current}/task").iterdir():
                queue.extend(int(child) for child in (task / "children").read_text().split())
    return found


def rss_mb(pid: int) -> float | None:
    """Resident memory of a process and its children, MB; None once it is gone."""
    total, seen = 0, False
    for process in descendants(pid):
        with suppress(OSError):
            for line in Path(f"/proc/{process}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
                    seen = True
    return total / 1024 if seen else None


def kill_tree(process: subprocess.Popen[Any], grace: float = 15.0) -> None:
    """SIGTERM the process, SIGKILL it (and any child it left) if it does not exit in time."""
    if process.poll() is not None:
        return
    family = descendants(process.pid)
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)
    for pid in family[1:]:
        with suppress(OSError):
            os.kill(pid, signal.SIGKILL)


@dataclass
class Server:
    models_dir: Path
    port: int
    log_path: Path
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        command = [sys.executable, "-m", "app.cli.main", "serve", "--host", HOST, "--port", str(self.port)]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                command,
                env=cli_env(self.models_dir, **self.env),
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=REPO,
            )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"server exited:\n{self.log_path.read_text(errors='replace')[-3000:]}")
            with suppress(httpx.HTTPError, ValueError):
                reply = httpx.get(f"{self.base_url}/readyz", timeout=2)
                # A corrupt default version may keep readiness at 503: loaded models are enough here.
                if reply.status_code == 200 or reply.json().get("checks", {}).get("models") == "loaded":
                    return
            time.sleep(0.25)
        raise RuntimeError("server did not become ready within 120 s")

    def stop(self) -> None:
        if self.process is not None:
            kill_tree(self.process)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


# ------------------------------------------------------------------------------------------------ probes
@dataclass
class Samples:
    latencies: list[float] = field(default_factory=list)
    failures: Counter[str] = field(default_factory=Counter)

    def worst_ms(self) -> float | None:
        return max(self.latencies) * 1000 if self.latencies else None


class Probe:
    """While an attack runs: /healthz and a one-point append every PROBE_INTERVAL, and the server's RSS peak."""

    def __init__(self, base_url: str, write_key: str, server_pid: int, clock: list[int]) -> None:
        self.base_url = base_url
        self.write_key = write_key
        self.server_pid = server_pid
        self.clock = clock  # next hour offset of the probe stream, shared across rows
        self.healthz = Samples()
        self.append = Samples()
        self.rss_peak: float | None = None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> Probe:
        for target in (self._probe_healthz, self._probe_append, self._sample_rss):
            thread = threading.Thread(target=target, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(PROBE_TIMEOUT + 5)

    def _loop(self, samples: Samples, request: Callable[[httpx.Client], httpx.Response], ok: int) -> None:
        deadline = time.monotonic() + 900  # bounded even if never stopped
        with httpx.Client(base_url=self.base_url, timeout=PROBE_TIMEOUT) as client:
            while time.monotonic() < deadline:  # at least one sample, however short the attack
                began = time.perf_counter()
                try:
                    status = request(client).status_code
                    if status == ok:
                        samples.latencies.append(time.perf_counter() - began)
                    else:
                        samples.failures[str(status)] += 1
                except httpx.HTTPError as error:
                    samples.failures[type(error).__name__] += 1
                if self._stop.wait(PROBE_INTERVAL):
                    return

    def _probe_healthz(self) -> None:
        self._loop(self.healthz, lambda client: client.get("/healthz"), 200)

    def _probe_append(self) -> None:
        headers = {"Authorization": f"Bearer {self.write_key}"}

        def one(client: httpx.Client) -> httpx.Response:
            hour = self.clock[0]
            self.clock[0] += 1
            body = {"points": points(1, offset=hour)}
            return client.post("/v1/streams/probe/points", json=body, headers=headers)

        self._loop(self.append, one, 200)

    def _sample_rss(self) -> None:
        while not self._stop.is_set():
            value = rss_mb(self.server_pid)
            if value is not None:
                self.rss_peak = max(self.rss_peak or 0.0, value)
            self._stop.wait(0.1)


# ------------------------------------------------------------------------------------------------ rows
@dataclass
class Row:
    id: str
    attack: str
    status: str = "-"
    seconds: float = 0.0
    rss_delta_mb: float | None = None
    rss_peak_delta_mb: float | None = None
    healthz_max_ms: float | None = None
    append_max_ms: float | None = None
    probe_failures: str = ""
    fast: bool = False
    note: str = ""


@dataclass
class Outcome:
    statuses: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def saw(self, status: int | str) -> None:
        self.statuses.append(str(status))

    def say(self, note: str) -> None:
        self.notes.append(note)


def detail(reply: httpx.Response, limit: int = 90) -> str:
    """The problem+json `detail` (or the start of the body) of an error answer, for the note column."""
    try:
        text = str(reply.json().get("detail", reply.text))
    except ValueError:
        text = reply.text
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def summarise_statuses(statuses: list[str]) -> str:
    counts = Counter(statuses)
    return " ".join(f"{status}x{n}" if n > 1 else status for status, n in counts.items()) or "-"


@dataclass
class Context:
    server: Server
    scale: Scale
    workdir: Path
    keys: dict[str, str]
    hook_secrets: list[str]
    csv: Path
    clock: list[int] = field(default_factory=lambda: [0])

    def client(self, role: str | None = None, timeout: float = 30.0) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.keys[role]}"} if role else {}
        return httpx.Client(base_url=self.server.base_url, headers=headers, timeout=timeout)


Attack = Callable[[Context, Outcome], None]


def run_row(ctx: Context, attack_id: str, name: str, attack: Attack) -> Row:
    row = Row(attack_id, name)
    outcome = Outcome()
    if not ctx.server.alive():
        outcome.say(f"server had exited ({ctx.server.process and ctx.server.process.returncode}); restarted")
        ctx.server.start()
    before = rss_mb(ctx.server.pid)
    began = time.monotonic()
    with Probe(ctx.server.base_url, ctx.keys["write"], ctx.server.pid, ctx.clock) as probe:
        try:
            attack(ctx, outcome)
        except Exception as error:  # a failed attack is a finding, not the end of the bench
            outcome.say(f"bench error: {type(error).__name__}: {str(error)[:160]}")
        row.seconds = time.monotonic() - began
    after = rss_mb(ctx.server.pid)
    if not ctx.server.alive():
        outcome.say(f"SERVER DIED (exit {ctx.server.process and ctx.server.process.returncode})")
    if before is not None and after is not None:
        row.rss_delta_mb = after - before
    if before is not None and probe.rss_peak is not None:
        row.rss_peak_delta_mb = probe.rss_peak - before
    row.status = summarise_statuses(outcome.statuses)
    row.healthz_max_ms = probe.healthz.worst_ms()
    row.append_max_ms = probe.append.worst_ms()
    failures = probe.healthz.failures + probe.append.failures
    row.probe_failures = " ".join(f"{kind}x{n}" for kind, n in failures.items())
    row.fast = (
        not failures
        and row.healthz_max_ms is not None
        and row.append_max_ms is not None
        and max(row.healthz_max_ms, row.append_max_ms) < FAST_MS
    )
    row.note = "; ".join(outcome.notes)
    return row


# ---------------------------------------------------------------------------- 1: slow webhook receivers
class TricklingReceiver:
    """Raw TCP on 127.0.0.1: answers `HTTP/1.1 200 OK`, then one header line every `interval`, never finishing."""

    def __init__(self, interval: float = 0.5, duration: float = 30.0) -> None:
        self.interval = interval
        self.duration = duration
        self.open = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._listener = socket.create_server((HOST, 0))
        self._listener.settimeout(0.1)
        self._spawn(self._accept_loop)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self._listener.getsockname()[1]}/hook"

    def stop(self) -> None:
        self._stop.set()
        for thread in list(self._threads):
            thread.join(5)
        self._listener.close()

    def _spawn(self, target: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._spawn(self._trickle, conn)

    def _trickle(self, conn: socket.socket) -> None:
        with self._lock:
            self.open += 1
        with conn:
            lines, until = 0, time.monotonic() + self.duration
            sel = selectors.DefaultSelector()
            sel.register(conn, selectors.EVENT_READ)
            while not self._stop.is_set() and time.monotonic() < until:
                if sel.select(self.interval):
                    try:
                        if not conn.recv(65536):
                            break  # the client hung up
                    except OSError:
                        break
                    continue
                line = b"HTTP/1.1 200 OK\r\n" if lines == 0 else f"X-Trickle-{lines}: {lines}\r\n".encode()
                try:
                    conn.sendall(line)
                except OSError:
                    break
                lines += 1
            sel.close()
        with self._lock:
            self.open -= 1


class HealthyReceiver:
    """A normal HTTP receiver on 127.0.0.1 recording when each event type first arrives."""

    def __init__(self) -> None:
        self.arrivals: dict[str, float] = {}
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                with suppress(ValueError, AttributeError):
                    receiver.arrivals.setdefault(str(json.loads(body).get("type")), time.monotonic())
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer((HOST, 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self._server.server_address[1]}/hook"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


def wait_for(condition: Callable[[], bool], timeout: float, interval: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()


def register_webhook(client: httpx.Client, url: str, out: Outcome) -> str | None:
    reply = client.post("/v1/webhooks", json={"url": url, "events": ["anomaly.opened", "anomaly.resolved"]})
    out.saw(reply.status_code)
    return str(reply.json()["id"]) if reply.status_code == 201 else None


def delete_webhooks(admin: httpx.Client, endpoints: list[str]) -> None:
    for endpoint in endpoints:
        with suppress(httpx.HTTPError):
            admin.delete(f"/v1/webhooks/{endpoint}")


def slow_webhooks(ctx: Context, out: Outcome) -> None:
    endpoints: list[str] = []
    with ctx.client("admin") as admin, ctx.client("write") as writer, ExitStack() as stack:
        stack.callback(delete_webhooks, admin, endpoints)  # runs last: after the receivers stopped
        slow = [TricklingReceiver() for _ in range(8)]
        for receiver in slow:
            stack.callback(receiver.stop)
        healthy = HealthyReceiver()
        stack.callback(healthy.stop)
        for receiver in slow:
            if (endpoint := register_webhook(admin, receiver.url, out)) is not None:
                endpoints.append(endpoint)
                for _ in range(3):
                    out.saw(admin.post(f"/v1/webhooks/{endpoint}/test").status_code)
        wait_for(lambda: sum(receiver.open for receiver in slow) >= 8, timeout=5)
        out.say(f"{sum(r.open for r in slow)} slow connections held")
        if (endpoint := register_webhook(admin, healthy.url, out)) is not None:
            endpoints.append(endpoint)
        out.saw(writer.put("/v1/streams/alarm", json={"model": "bench", "sensitivity": 0.7}).status_code)
        sent = time.monotonic()
        reply = writer.post("/v1/streams/alarm/points", json={"points": points(60, spike_at=40)})
        out.saw(reply.status_code)
        opened = reply.status_code == 200 and any(e.get("kind") == "opened" for e in reply.json()["events"])
        if not opened:
            out.say("the spike opened no alarm")
            return
        if wait_for(lambda: "anomaly.opened" in healthy.arrivals, ctx.scale.webhook_wait):
            out.say(f"healthy alert after {healthy.arrivals['anomaly.opened'] - sent:.2f} s")
        else:
            out.say(f"healthy alert NOT delivered within {ctx.scale.webhook_wait:.0f} s")


# ---------------------------------------------------------------------------- 2: huge /detect
EPOCH_2024 = 1_704_067_200


def detect_body(count: int) -> bytes:
    """One hourly series; Unix-second timestamps (the model has calendar inputs) and 2-decimal values keep
    200,000 points at about 3.4 MB, under the default 4 MiB body limit."""
    values = np.round(hourly_values(count), 2).tolist()
    stamps = list(range(EPOCH_2024, EPOCH_2024 + 3600 * count, 3600))
    return json.dumps({"series": [{"id": "huge", "values": values, "timestamps": stamps}]}).encode()


def values_body(size: int) -> bytes:
    """A valid detect body of about `size` bytes: one series of values only."""
    count = size // 7
    body = json.dumps({"series": [{"values": hourly_values(count).tolist()}]}, separators=(",", ":"))
    return body.encode()[: size - 8].rsplit(b",", 1)[0] + b"]}]}"


def huge_detect(copies: int) -> Attack:
    def attack(ctx: Context, out: Outcome) -> None:
        body = detect_body(ctx.scale.detect_points)
        took: list[float] = []
        details: list[str] = []

        def one() -> None:
            began = time.monotonic()
            try:
                with ctx.client("read", timeout=ctx.scale.detect_timeout) as client:
                    reply = client.post(
                        "/v1/models/bench/detect", content=body, headers={"content-type": "application/json"}
                    )
                out.saw(reply.status_code)
                if reply.status_code != 200 and not details:
                    details.append(detail(reply))
            except httpx.HTTPError as error:
                out.saw(type(error).__name__)
            took.append(time.monotonic() - began)

        threads = [threading.Thread(target=one, daemon=True) for _ in range(copies)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(ctx.scale.detect_timeout + 10)
        out.say(
            f"{copies} x {ctx.scale.detect_points:,} points ({len(body) / 1e6:.1f} MB); "
            f"slowest answer {max(took, default=0):.1f} s"
        )
        if details:
            out.say(f"detail: {details[0]}")

    return attack


# ---------------------------------------------------------------------------- 3: deep JSON, huge integer
def deep_json(ctx: Context, out: Outcome) -> None:
    bodies = {
        "nested 1000": b'{"series": ' + b"[" * 1000 + b"]" * 1000 + b"}",
        "5000 digits": b'{"series": [{"values": [' + b"9" * 5000 + b"]}]}",
    }
    with ctx.client("read") as client:
        for label, body in bodies.items():
            reply = client.post(
                "/v1/models/bench/forecast", content=body, headers={"content-type": "application/json"}
            )
            out.saw(reply.status_code)
            out.say(f"{label}: {reply.status_code}")


# ---------------------------------------------------------------------------- 4: slowloris
PARTIAL_HEADER = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: slow"


def read_status(data: bytes) -> str:
    match = re.match(rb"HTTP/1\.[01] (\d{3})", data)
    return match.group(1).decode() if match else "closed"


def trickled_body_socket(ctx: Context) -> socket.socket:
    sock = socket.create_connection((HOST, ctx.server.port), timeout=5)
    head = (
        "POST /v1/models/bench/detect HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {ctx.keys['read']}\r\nContent-Length: 1000\r\n\r\n"
    )
    sock.sendall(head.encode())
    return sock


def slowloris(ctx: Context, out: Outcome) -> None:
    window = ctx.scale.slowloris_window
    began = time.monotonic()
    ended: dict[socket.socket, tuple[str, float]] = {}
    with ExitStack() as stack, selectors.DefaultSelector() as sel:
        trickle = stack.enter_context(trickled_body_socket(ctx))  # first, so the connection limit spares it
        sel.register(trickle, selectors.EVENT_READ)
        sockets: list[socket.socket] = []
        refused = 0
        for _ in range(ctx.scale.slowloris_connections):
            try:
                sock = stack.enter_context(socket.create_connection((HOST, ctx.server.port), timeout=2))
                sock.sendall(PARTIAL_HEADER)
            except OSError:
                refused += 1
                continue
            sockets.append(sock)
            sel.register(sock, selectors.EVENT_READ)
        next_byte = time.monotonic()
        while len(ended) < len(sockets) + 1 and time.monotonic() - began < window:
            if trickle not in ended and time.monotonic() >= next_byte:
                with suppress(OSError):
                    trickle.sendall(b" ")
                next_byte += 1.0
            for key, _ in sel.select(0.1):
                ready = key.fileobj
                assert isinstance(ready, socket.socket)
                try:
                    data = ready.recv(4096)
                except OSError:
                    data = b""
                ended[ready] = (read_status(data), time.monotonic() - began)
                sel.unregister(ready)
    partial = [ended[s] for s in sockets if s in ended]
    for status, _ in partial:
        out.saw(status)
    still_open = len(sockets) - len(partial)
    last = max((at for _, at in partial), default=0.0)
    out.say(
        f"{len(sockets)} partial headers (limit {ctx.scale.max_connections}, refused {refused}): "
        f"{len(partial)} closed by the server, last at {last:.1f} s, {still_open} still open at {window:.0f} s"
    )
    if trickle in ended:
        status, at = ended[trickle]
        out.saw(status)
        out.say(f"trickled body: {status} at {at:.1f} s")
    else:
        out.say(f"trickled body still open at {window:.0f} s")


# ---------------------------------------------------------------------------- 5: inbound id clash
def inbound_clash(ctx: Context, out: Outcome) -> None:
    from app.webhooks.signing import signed_headers

    msg_id = f"bench-{secrets.token_hex(6)}"
    replies = []
    with ctx.client() as client:
        for n, secret in enumerate(ctx.hook_secrets):
            body = json.dumps({"points": [{"stream": "hooked", **points(1, offset=n)[0]}]}).encode()
            headers = {"content-type": "application/json", **signed_headers(secret, msg_id, body)}
            reply = client.post("/v1/hooks/points", content=body, headers=headers)
            out.saw(reply.status_code)
            replies.append(reply)
    with ctx.client("read") as reader:
        state = reader.get("/v1/streams/hooked")
    stored = state.json().get("point_count") if state.status_code == 200 else None
    replayed = replies[1].headers.get("webhook-replayed", "absent")
    out.say(f"second sender: Webhook-Replayed {replayed}; points stored {stored}/2")


# ---------------------------------------------------------------------------- 6: unknown stream ids
def ghost_appends(ctx: Context, out: Outcome) -> None:
    total, workers = ctx.scale.ghost_ids, 4
    deadline = time.monotonic() + ctx.scale.ghost_seconds
    prefix = secrets.token_hex(4)
    body = json.dumps({"points": points(1)}).encode()
    counts: Counter[str] = Counter()
    lock = threading.Lock()

    def work(part: int) -> None:
        seen: Counter[str] = Counter()
        with ctx.client("write") as client:
            for i in range(part, total, workers):
                if time.monotonic() > deadline:
                    break
                try:
                    reply = client.post(
                        f"/v1/streams/ghost-{prefix}-{i}/points",
                        content=body,
                        headers={"content-type": "application/json"},
                    )
                    seen[str(reply.status_code)] += 1
                except httpx.HTTPError as error:
                    seen[type(error).__name__] += 1
        with lock:
            counts.update(seen)

    threads = [threading.Thread(target=work, args=(n,), daemon=True) for n in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(ctx.scale.ghost_seconds + 30)
    for status, n in counts.items():
        out.statuses.extend([status] * n)
    sent = sum(counts.values())
    out.say(f"{sent:,} of {total:,} distinct ids sent")


# ---------------------------------------------------------------------------- 7: corrupt model, paths
ABSOLUTE_PATH = re.compile(r"(?<![\w:/])/(?:[\w.\-]+/)+[\w.\-]+")


def leaked_paths(text: str, workdir: Path) -> list[str]:
    found = [match for match in ABSOLUTE_PATH.findall(text) if not match.startswith("/v1/")]
    if str(workdir) in text or str(workdir.resolve()) in text:
        found.append(str(workdir))
    return found


def corrupt_paths(ctx: Context, out: Outcome) -> None:
    with ctx.client() as anonymous, ctx.client("read") as reader:
        ready = anonymous.get("/readyz")
        forecast = reader.post("/v1/models/broken/forecast", json={"series": [{"values": [10.0] * 30}]})
    leaks = []
    for label, reply in (("readyz", ready), ("forecast", forecast)):
        out.saw(reply.status_code)
        if paths := leaked_paths(reply.text, ctx.workdir):
            leaks.append(f"{label}: {paths[0]}")
    out.say("paths disclosed: " + ("; ".join(leaks) if leaks else "none"))


# ---------------------------------------------------------------------------- 8: webhook URL password
def url_password(ctx: Context, out: Outcome) -> None:
    password = f"pw{secrets.token_hex(8)}"
    url = f"http://benchuser:{password}@127.0.0.1:9/hook"
    with ctx.client("admin") as admin:
        reply = admin.post("/v1/webhooks", json={"url": url, "events": ["anomaly.opened"]})
        out.saw(reply.status_code)
        if reply.status_code == 201:
            admin.delete(f"/v1/webhooks/{reply.json()['id']}")
            out.say("URL with credentials ACCEPTED")
    out.say("password echoed: " + ("YES" if password in reply.text else "no"))


# ---------------------------------------------------------------------------- 9: kill -9 during publish
def leftovers(model_dir: Path, registered: set[int]) -> tuple[int, int]:
    """(.staging-* folders, numbered folders without a registry row)."""
    if not model_dir.is_dir():
        return 0, 0
    entries = list(model_dir.iterdir())
    staging = sum(entry.name.startswith(".staging-") for entry in entries)
    unregistered = sum(entry.name.isdigit() and int(entry.name) not in registered for entry in entries)
    return staging, unregistered


def registered_versions(ctx: Context, name: str) -> set[int]:
    with ctx.client("read") as reader:
        reply = reader.get(f"/v1/models/{name}")
    return set(reply.json()["versions"]) if reply.status_code == 200 else set()


def kill_during_publish(ctx: Context, out: Outcome) -> None:
    name, models_dir = "crashy", ctx.server.models_dir
    model_dir = models_dir / name
    command = [sys.executable, "-m", "app.cli.main", *train_args(ctx.csv, name, epochs=1)]
    process = subprocess.Popen(
        command, env=cli_env(models_dir), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO
    )
    caught = False
    try:
        deadline = time.monotonic() + 180
        while process.poll() is None and time.monotonic() < deadline:
            if model_dir.is_dir() and any(e.name.startswith(".staging-") for e in model_dir.iterdir()):
                process.send_signal(signal.SIGKILL)
                caught = True
                break
            time.sleep(0.001)
    finally:
        kill_tree(process, grace=1)
    out.say(
        "killed with a staging folder present"
        if caught
        else f"publish not caught (exit {process.returncode})"
    )
    before = leftovers(model_dir, registered_versions(ctx, name))
    gc = cli(models_dir, "models", "gc", "--min-age", "0", "--json")
    out.saw(f"gc:{gc.returncode}")
    after = leftovers(model_dir, registered_versions(ctx, name))
    out.say(f"orphans (staging, unregistered) {before} -> {after} after gc")
    registered = registered_versions(ctx, name)
    version = publish_copy(models_dir, "bench", name)
    out.say(f"next publish got version {version} (expected {max(registered, default=0) + 1})")


def publish_copy(models_dir: Path, source: str, target: str) -> int:
    """A real publish (artifact folder, then database row) of `source`'s default network as `target`, in process
    (the bench already imported torch): which number the registry hands out after the crash."""
    from app.registry.factory import open_registry
    from app.settings import Settings

    registry = open_registry(Settings(models_dir=models_dir))
    loaded = registry.load(registry.resolve(source))
    manifest = loaded.manifest.model_copy(update={"version": None, "weights": None})
    return registry.publish(target, loaded.forecaster.network.state_dict(), manifest).version


# ---------------------------------------------------------------------------- 10: auth first, strict values
def unauthenticated_body(ctx: Context, out: Outcome) -> None:
    body = values_body(4 * 1024 * 1024 - 64)
    with ctx.client() as anonymous:
        began = time.monotonic()
        reply = anonymous.post(
            "/v1/models/bench/detect", content=body, headers={"content-type": "application/json"}
        )
    out.saw(reply.status_code)
    out.say(
        f"{len(body) / 1e6:.1f} MB unauthenticated: {reply.status_code} in {time.monotonic() - began:.2f} s"
    )
    head = (
        "POST /v1/models/bench/detect HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    with socket.create_connection((HOST, ctx.server.port), timeout=3) as sock:
        sock.sendall(head + body[:65536])
        try:
            status = read_status(sock.recv(4096))
        except TimeoutError:
            status = "none"
    out.saw(status)
    early = status not in ("none", "closed")
    out.say(f"answer before the body was complete: {'yes (' + status + ')' if early else 'no'}")


def loose_values(ctx: Context, out: Outcome) -> None:
    series = [10.0 + (i % 24) / 8 for i in range(40)]
    with ctx.client("read") as reader, ctx.client("write") as writer:
        for bad in ("1.5", True):
            reply = reader.post("/v1/models/bench/forecast", json={"series": [{"values": [*series, bad]}]})
            out.saw(reply.status_code)
            appended = writer.post(
                "/v1/streams/strict/points",
                json={"points": [{"timestamp": stamp(ctx.clock[0]), "value": bad}]},
            )
            ctx.clock[0] += 1
            out.saw(appended.status_code)
            out.say(f"{json.dumps(bad)}: forecast {reply.status_code}, append {appended.status_code}")


def malformed_request(ctx: Context, out: Outcome) -> None:
    with socket.create_connection((HOST, ctx.server.port), timeout=5) as sock:
        sock.sendall(b"GARBAGE\x01 / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        data = b""
        with suppress(TimeoutError, OSError):
            while len(data) < 65536 and (chunk := sock.recv(4096)):
                data += chunk
    out.saw(read_status(data))
    kind = re.search(rb"(?im)^content-type:\s*([^\r\n;]+)", data)
    out.say(f"content-type {kind.group(1).decode() if kind else 'none'}")


ATTACK_FUNCTIONS: dict[str, Attack] = {
    "1": slow_webhooks,
    "2": huge_detect(1),
    "2x4": huge_detect(4),
    "3": deep_json,
    "4": slowloris,
    "5": inbound_clash,
    "6": ghost_appends,
    "7": corrupt_paths,
    "8": url_password,
    "9": kill_during_publish,
    "10a": unauthenticated_body,
    "10b": loose_values,
    "10c": malformed_request,
}


# ------------------------------------------------------------------------------------------------ setup
def train_models(models_dir: Path) -> None:
    """`bench` (trained in process, alias production) and `broken` (a copy whose weights are then corrupted)."""
    import torch

    from app.registry.factory import open_registry
    from app.settings import Settings
    from app.training.config import TrainingConfig
    from app.training.data.prepared import prepare
    from app.training.pipeline import train_model

    torch.set_num_threads(1)
    config = TrainingConfig(window=24, horizon=6, hidden=16, layers=1, epochs=3, batch_size=64, patience=2)
    frame = pd.DataFrame(
        {"timestamp": pd.date_range(START, periods=900, freq="h"), "value": hourly_values(900)}
    )
    data = prepare(frame, min_length=config.window + config.horizon)
    train_model(
        data, "bench", open_registry(Settings(models_dir=models_dir)), config, alias="production", force=True
    )
    publish_copy(models_dir, "bench", "broken")  # its only version, so its default one
    weights = next((models_dir / "broken").glob("*/model.safetensors"))
    corrupted = bytearray(weights.read_bytes())
    for offset in range(len(corrupted) // 2, len(corrupted) // 2 + 64):
        corrupted[offset] ^= 0xFF
    weights.write_bytes(bytes(corrupted))


def create_registry(models_dir: Path) -> None:
    """The registry database with every table, before several processes write to it at once."""
    from app.settings import Settings
    from app.storage.schema import open_database

    open_database(Settings(models_dir=models_dir)).dispose()


def create_credentials(models_dir: Path) -> tuple[dict[str, str], list[str]]:
    """Three API keys and two inbound secrets, with the real CLI (five processes, run side by side)."""
    roles = ("admin", "write", "read")
    with ThreadPoolExecutor(max_workers=5) as pool:
        keys = [pool.submit(cli_json, models_dir, "keys", "create", "--role", role) for role in roles]
        hooks = [pool.submit(cli_json, models_dir, "hooks", "secret", "create") for _ in range(2)]
        return (
            {role: str(future.result()["key"]) for role, future in zip(roles, keys, strict=True)},
            [str(future.result()["secret"]) for future in hooks],
        )


def server_env(scale: Scale) -> dict[str, str]:
    return {
        "TSWATCH_WEBHOOK_ALLOW_CIDRS": "127.0.0.0/8",
        "TSWATCH_WEBHOOK_TIMEOUT_SECONDS": str(WEBHOOK_TIMEOUT),
        "TSWATCH_HEADER_TIMEOUT_SECONDS": str(HEADER_TIMEOUT),
        "TSWATCH_BODY_TIMEOUT_SECONDS": str(BODY_TIMEOUT),
        "TSWATCH_MAX_CONNECTIONS": str(scale.max_connections),
        "TSWATCH_ALIAS_POLL_SECONDS": "2",
    }


def prepare_streams(ctx: Context) -> None:
    with ctx.client("write") as writer:
        for stream in ("probe", "hooked", "strict"):
            reply = writer.put(f"/v1/streams/{stream}", json={"model": "bench"})
            if reply.status_code not in (200, 201):
                raise RuntimeError(
                    f"could not create stream {stream}: {reply.status_code} {reply.text[:300]}"
                )
        history = writer.post("/v1/streams/probe/points", json={"points": points(48)})
        if history.status_code != 200:
            raise RuntimeError(f"could not fill the probe stream: {history.status_code} {history.text[:300]}")
    ctx.clock[0] = 48


@contextmanager
def on_sigterm_exit() -> Iterator[None]:
    """SIGTERM unwinds like Ctrl-C, so every finally below runs."""
    previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(max(soft, 4096), hard), hard))


# ------------------------------------------------------------------------------------------------ output
def cell(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def table(rows: list[Row]) -> str:
    header = [
        "#",
        "attack",
        "status",
        "seconds",
        "RSS Δ MB",
        "peak Δ MB",
        "healthz ms",
        "append ms",
        "fast",
        "note",
    ]
    lines = [
        [
            row.id,
            row.attack,
            row.status,
            cell(row.seconds, 1),
            cell(row.rss_delta_mb, 1),
            cell(row.rss_peak_delta_mb, 1),
            cell(row.healthz_max_ms),
            cell(row.append_max_ms),
            "yes" if row.fast else "NO",
            row.note + (f" [probe failures: {row.probe_failures}]" if row.probe_failures else ""),
        ]
        for row in rows
    ]
    widths = [max(len(line[i]) for line in [header, *lines]) for i in range(len(header) - 1)]
    numeric = {3, 4, 5, 6, 7}

    def render(line: list[str]) -> str:
        cells = [
            text.rjust(w) if i in numeric else text.ljust(w)
            for i, (text, w) in enumerate(zip(line, widths, strict=False))
        ]
        return "  ".join([*cells, line[-1]]).rstrip()

    rule = "  ".join("-" * w for w in widths) + "  ----"
    return "\n".join([render(header), rule, *(render(line) for line in lines)])


def progress(message: str) -> None:
    print(f"  {message}", file=sys.stderr, flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--port", type=int, default=0, help="server port on 127.0.0.1 (default: a free one)")
    parser.add_argument("--quick", action="store_true", help="smaller counts (about a minute)")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON instead of a table")
    parser.add_argument(
        "--keep", action="store_true", help="keep the temporary folder (server log, registry)"
    )
    args = parser.parse_args()
    scale = Scale.of(args.quick)
    raise_fd_limit()
    workdir = Path(tempfile.mkdtemp(prefix="tswatch-abuse-"))
    models_dir = workdir / "models"
    server = Server(models_dir, args.port or free_port(), workdir / "server.log", server_env(scale))
    rows: list[Row] = []
    try:
        with on_sigterm_exit():
            setup_began = time.monotonic()
            create_registry(models_dir)
            with ThreadPoolExecutor(max_workers=1) as pool:  # CLI processes start while the models train
                credentials = pool.submit(create_credentials, models_dir)
                train_models(models_dir)
                progress(f"models trained ({time.monotonic() - setup_began:.0f} s)")
                keys, hook_secrets = credentials.result()
            progress(f"keys and secrets created ({time.monotonic() - setup_began:.0f} s)")
            server.start()
            progress(f"server ready on port {server.port} ({time.monotonic() - setup_began:.0f} s)")
            ctx = Context(server, scale, workdir, keys, hook_secrets, write_csv(workdir / "data.csv"))
            prepare_streams(ctx)
            setup = time.monotonic() - setup_began
            for attack_id, name in ATTACKS:
                if args.quick and attack_id in QUICK_SKIP:
                    continue
                rows.append(run_row(ctx, attack_id, name, ATTACK_FUNCTIONS[attack_id]))
                progress(f"done {attack_id:>4} {name} ({rows[-1].seconds:.1f} s)")
    finally:
        server.stop()
        if args.keep:
            print(f"kept {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    settings = (
        f"{'quick' if args.quick else 'full'} run, setup {setup:.0f} s; server on {HOST} with header/body timeouts "
        f"{HEADER_TIMEOUT:g}/{BODY_TIMEOUT:g} s, max connections {scale.max_connections}, webhook timeout "
        f"{WEBHOOK_TIMEOUT:g} s; probes every {PROBE_INTERVAL:g} s; fast = every probe answered under {FAST_MS:g} ms"
    )
    if args.json:
        print(json.dumps({"settings": settings, "rows": [asdict(row) for row in rows]}, indent=2))
    else:
        print(settings)
        print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
