"""A real PostgreSQL cluster for the tests: Debian's `postgresql` binaries, `initdb` into a temporary folder,
listening on 127.0.0.1 only, started as a child process (its own pid) and stopped by the fixture that started it.

When the tests run as root (CI containers), the server runs as the `postgres` system user the Debian package
creates: PostgreSQL refuses to run as root. Without the binaries, `find_binaries` returns None and the
PostgreSQL half of the parametrised suite is skipped with the reason.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import psycopg

SERVER_USER = "postgres"  # created by Debian's postgresql-common; used only when the tests run as root
SUPERUSER = "tswatch"
START_SECONDS = 60
MISSING_REASON = "PostgreSQL binaries not found (Debian: apt-get install postgresql); the PostgreSQL half of the suite is skipped"


def find_binaries() -> Path | None:
    """The folder holding `initdb` and `postgres` (the newest Debian version), or None."""
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name), reverse=True
    )
    for folder in candidates:
        if (folder / "initdb").exists() and (folder / "postgres").exists():
            return folder
    found = shutil.which("postgres")
    return Path(found).parent if found and shutil.which("initdb") else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run_as() -> tuple[int | None, int | None]:
    """(uid, gid) to run the server as: the `postgres` user when we are root, else ourselves (None)."""
    if os.geteuid() != 0:
        return None, None
    entry = pwd.getpwnam(SERVER_USER)
    return entry.pw_uid, entry.pw_gid


@dataclass
class PostgresCluster:
    """One running cluster; `url(name)` is a SQLAlchemy URL of one of its databases."""

    root: Path
    port: int
    process: subprocess.Popen[bytes]

    @classmethod
    def start(cls, root: Path, binaries: Path) -> PostgresCluster:
        data, log = root / "data", root / "server.log"
        uid, gid = _run_as()
        root.mkdir(parents=True, exist_ok=True)
        data.mkdir()
        if uid is not None and gid is not None:
            for path in (root, data):
                os.chown(path, uid, gid)
        subprocess.run(
            [
                str(binaries / "initdb"),
                "-D",
                str(data),
                "-U",
                SUPERUSER,
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
            check=True,
            capture_output=True,
            user=uid,
            group=gid,
            cwd=root,
        )
        port = _free_port()
        settings = {
            "listen_addresses": "127.0.0.1",  # loopback only
            "port": str(port),
            "unix_socket_directories": str(root),
            "fsync": "off",  # a test cluster: the tests kill tswatch processes, never this server
            "full_page_writes": "off",
            "max_connections": "300",
            "shared_buffers": "64MB",
        }
        args = [str(binaries / "postgres"), "-D", str(data)]
        for key, value in settings.items():
            args += ["-c", f"{key}={value}"]
        with open(log, "wb") as out:
            process = subprocess.Popen(
                args, stdout=out, stderr=subprocess.STDOUT, user=uid, group=gid, cwd=root
            )
        cluster = cls(root, port, process)
        cluster._wait_ready()
        return cluster

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"postgres exited with {self.process.returncode}:\n{self.log()}")
            try:
                with psycopg.connect(self.dsn("postgres"), connect_timeout=2):
                    return
            except psycopg.OperationalError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"postgres did not accept connections within {START_SECONDS} s:\n{self.log()}")

    def log(self) -> str:
        path = self.root / "server.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def dsn(self, database: str) -> str:
        return f"host=127.0.0.1 port={self.port} user={SUPERUSER} dbname={database}"

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def create_database(self, template: str | None = None) -> str:
        """A new empty database (or a copy of `template`); returns its name."""
        name = f"t_{uuid.uuid4().hex[:16]}"
        clause = f" TEMPLATE {template}" if template else ""
        with psycopg.connect(self.dsn("postgres"), autocommit=True) as connection:
            connection.execute(f"CREATE DATABASE {name}{clause}")
        return name

    def drop_database(self, name: str) -> None:
        with psycopg.connect(self.dsn("postgres"), autocommit=True) as connection:
            connection.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def stop(self) -> None:
        """Fast shutdown by the server's own pid (SIGINT), SIGKILL if it lingers."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
