"""Child processes of the server: tying a child's life to its parent, and recognising a process by its pid."""

from __future__ import annotations

import ctypes
import os
import signal
from pathlib import Path
from typing import Final

PR_SET_PDEATHSIG: Final = 1  # prctl(2)


def die_with_parent(parent: int | None = None) -> None:
    """Ask Linux to SIGTERM this process when its parent dies (even by kill -9), so a killed server leaves no
    child behind; exit at once if the parent is already gone (this process was handed to init, or to another
    reaper than `parent`, the pid of the parent that started it, when given). Elsewhere a no-op (a child then
    notices its parent's end by other means: a closed pipe, a stale heartbeat)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass
    current = os.getppid()
    if current == 1 or (parent is not None and current != parent):  # it died before the request took effect
        os._exit(0)


def process_alive(pid: int) -> bool:
    """Whether process `pid` exists and is not a zombie (a killed process its parent has not reaped yet)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no procfs: trust kill(0)
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


def process_arguments(pid: int) -> list[str] | None:
    """The command line of process `pid` (Linux procfs), None when it cannot be read."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def pid_namespace() -> str:
    """An id of this process's pid namespace (its procfs inode; "" without procfs): two processes can compare
    each other's pids only inside one namespace (containers sharing a host name do not)."""
    try:
        link = os.readlink("/proc/self/ns/pid")  # "pid:[4026531836]"
    except OSError:
        return ""
    return "".join(character for character in link if character.isdigit())
