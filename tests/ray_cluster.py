"""A throw-away Ray cluster on loopback for the Ray tests and bench/train_many.py: a head node plus joined
nodes, each `ray start` with its own CPUs, every process stopped by pid (never `ray stop`, which stops every
Ray process of the machine).

Loopback only: Ray replaces 127.0.0.1 given as a node or cluster address by the address this machine would
use to reach the internet (found with an unsent UDP socket), and then listens there. The nodes are started
with that look-up answering 127.0.0.1, so every listener stays on loopback; the driver is told the same with
`RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0` (environment, for a child process) or `loopback_driver()` (in-process).
Usage statistics are disabled.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

START_TIMEOUT = 120.0
NODE_SCRIPT = (
    "import sys\n"
    "import ray._private.services as services\n"
    "services.node_ip_address_from_perspective = lambda address=None: '127.0.0.1'\n"
    "from ray.scripts.scripts import main\n"
    "sys.argv = ['ray', *sys.argv[1:]]\n"
    "main()\n"
)
DRIVER_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
TASK_TITLE = "ray::run_fit_task"  # a worker's process title while it runs app.training.fit_tasks.run_fit_task


def ray_installed() -> bool:
    try:
        import ray  # noqa: F401
    except ModuleNotFoundError:
        return False
    return True


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def _parent(pid: int) -> int:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    return int(stat.rsplit(")", 1)[1].split()[1])


def _pids() -> list[int]:
    return [int(entry) for entry in os.listdir("/proc") if entry.isdigit()]


class RayCluster:
    def __init__(self, nodes: int = 2, cpus_per_node: int = 1) -> None:
        self.nodes, self.cpus_per_node = nodes, cpus_per_node
        self.temp_dir = Path(tempfile.mkdtemp(prefix="tswray"))  # short: Ray's socket paths live under it
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"

    def _ray_start(self, *args: str) -> None:
        env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
        command = [sys.executable, "-c", NODE_SCRIPT, "start", *args, f"--num-cpus={self.cpus_per_node}"]
        command += ["--disable-usage-stats", f"--temp-dir={self.temp_dir}"]
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=START_TIMEOUT)
        if result.returncode != 0:
            raise RuntimeError(f"ray start {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")

    def start(self) -> RayCluster:
        self._ray_start(
            "--head", "--node-ip-address=127.0.0.1", f"--port={self.port}", "--include-dashboard=false"
        )
        for _ in range(self.nodes - 1):
            self._ray_start(f"--address={self.address}")
        return self

    def processes(self) -> list[int]:
        """Every process of this cluster: those naming its temp folder, and their descendants."""
        marker = str(self.temp_dir)
        pids = _pids()
        roots = {pid for pid in pids if any(marker in part for part in _cmdline(pid))}
        found, changed = set(roots), True
        while changed:
            children = {pid for pid in pids if pid not in found and _parent(pid) in found}
            found |= children
            changed = bool(children)
        return sorted(found)

    def task_workers(self) -> list[int]:
        """Workers of this cluster running a fit task right now."""
        return [pid for pid in self.processes() if (_cmdline(pid) or [""])[0].startswith(TASK_TITLE)]

    def listening_outside_loopback(self) -> list[str]:
        """Listening TCP sockets of this cluster's processes on any address outside 127.0.0.0/8."""
        inodes = set()
        for pid in self.processes():
            try:
                for fd in os.listdir(f"/proc/{pid}/fd"):
                    target = os.readlink(f"/proc/{pid}/fd/{fd}")
                    if target.startswith("socket:["):
                        inodes.add(target[8:-1])
            except OSError:
                continue
        bad = []
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                local, state, inode = fields[1], fields[3], fields[9]
                if state == "0A" and inode in inodes and not _loopback(local):
                    bad.append(local)
        return bad

    def stop(self) -> None:
        pids = self.processes()
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in pids:
                with suppress(ProcessLookupError):
                    os.kill(pid, sig)
            deadline = time.monotonic() + 5.0
            while time.monotonic() < deadline and any(_alive(pid) for pid in pids):
                time.sleep(0.1)
        shutil.rmtree(self.temp_dir, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _loopback(hex_address: str) -> bool:
    host = hex_address.split(":")[0]
    if len(host) == 8:  # IPv4, little-endian
        return bytes.fromhex(host)[::-1][0] == 127
    return host in ("00000000000000000000000001000000", "0000000000000000FFFF00000100007F")


@contextmanager
def loopback_driver() -> Iterator[None]:
    """This process connects to 127.0.0.1 as given (see the module docstring)."""
    import ray._private.ray_constants as constants

    before = constants.ENABLE_RAY_CLUSTER
    constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        constants.ENABLE_RAY_CLUSTER = before


@contextmanager
def ray_cluster(nodes: int = 2, cpus_per_node: int = 1) -> Iterator[RayCluster]:
    cluster = RayCluster(nodes, cpus_per_node)
    try:
        yield cluster.start()
    finally:
        cluster.stop()
