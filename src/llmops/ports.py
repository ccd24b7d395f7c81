"""Is a host port free, and if not, who holds it?  The answer names a process or a container."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any


def is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _listening_inodes(port: int) -> set[str]:
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if len(parts) > 9 and parts[3] == "0A" and int(parts[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(parts[9])
    return inodes


def process_holding(port: int) -> str | None:
    """`name (pid N)` of the process listening on the port, from /proc (no psutil needed)."""
    inodes = _listening_inodes(port)
    if not inodes:
        return None
    for pid in filter(str.isdigit, os.listdir("/proc")):
        fd_dir = f"/proc/{pid}/fd"
        try:
            for fd in os.listdir(fd_dir):
                target = os.readlink(f"{fd_dir}/{fd}")
                if target.startswith("socket:[") and target[8:-1] in inodes:
                    comm = Path(f"/proc/{pid}/comm").read_text().strip()
                    return f"{comm} (pid {pid})"
        except OSError:
            continue
    return "a process in another namespace"


def container_publishing(client: Any, port: int) -> str | None:
    try:
        for c in client.containers.list(filters={"publish": str(port)}):
            return f"container {c.name}"
    except Exception:  # noqa: BLE001 - the process lookup still answers
        return None
    return None


def holder(port: int, client: Any = None) -> str:
    """Who holds the port: a container first (docker-proxy would be a useless answer), else a process."""
    return (client is not None and container_publishing(client, port)) or process_holding(port) or "unknown"
