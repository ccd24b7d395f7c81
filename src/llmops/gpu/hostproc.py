"""llama-servers running as plain host processes: `gpu-report --server NAME=PID[:LOGFILE]`.

Docker discovery gives gpu-report a service's container, its command line and its log.  A
server started by hand or by systemd (a lent GPU machine has no Docker) has none of these, so
the user names it: the PID NVML reports for it, and the file its output goes to, which holds the
buffer-size lines (at `-lv 4`) and what llama.cpp's fit changed.  The command line and the
LLAMA_ARG_* environment are read from /proc/PID: what the server itself was started with, not
what someone believes it was.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from ..errors import ConfigError, UsageError
from .llamaargs import parse_server_args
from .server import ModelServer

_SPEC = re.compile(r"^(?P<name>[^=]+)=(?P<pid>[0-9]+)(?::(?P<log>.+))?$")
_ENV_PREFIX = "LLAMA_ARG_"      # only what changes the server's memory; never its other secrets


@dataclass(frozen=True)
class HostServer:
    name: str
    pid: int
    log: Path | None = None


def parse_host_server(value: str) -> HostServer:
    """`NAME=PID[:LOGFILE]` -> HostServer, or UsageError (exit 2) in one line."""
    m = _SPEC.match(value.strip())
    if not m or m.group("name") != m.group("name").strip():
        raise UsageError(f"--server {value!r}: expected NAME=PID[:LOGFILE], e.g. "
                         "inference-chat=4242:/tmp/chat.log")
    pid = int(m.group("pid"))
    if pid <= 0:
        raise UsageError(f"--server {value!r}: PID must be > 0")
    log = m.group("log")
    return HostServer(m.group("name"), pid, Path(log).expanduser() if log else None)


def parse_host_servers(values: Iterable[str]) -> list[HostServer]:
    servers = [parse_host_server(v) for v in values]
    for field_, what in ((lambda s: s.name, "name"), (lambda s: s.pid, "PID")):
        seen: set[Any] = set()
        for s in servers:
            key = field_(s)
            if key in seen:
                raise UsageError(f"--server: {what} {key} given twice")
            seen.add(key)
    return servers


def _read_argv(proc: Path, pid: int, tries: int = 10) -> list[str]:
    argv: list[str] = []
    for attempt in range(tries):
        try:
            raw = (proc / str(pid) / "cmdline").read_bytes()
        except FileNotFoundError:
            raise UsageError(f"--server: no process {pid} ({proc / str(pid)} does not exist)") from None
        except OSError as exc:
            raise UsageError(f"--server: cannot read the command line of process {pid}: "
                             f"{exc.strerror}") from None
        argv = [a.decode(errors="replace") for a in raw.split(b"\0")]
        while argv and argv[-1] == "":
            argv.pop()
        if argv:
            return argv
        # A process in the middle of exec shows an empty command line for a moment (seen here
        # within milliseconds of the fork); a kernel thread or a zombie stays empty.
        if attempt + 1 < tries:
            time.sleep(0.05)
    raise UsageError(f"--server: process {pid} has no command line (exited or a kernel thread)")


def _read_env(proc: Path, pid: int) -> dict[str, str]:
    # Unreadable (another user's process without root): the command line alone is still a plan.
    try:
        raw = (proc / str(pid) / "environ").read_bytes()
    except OSError:
        return {}
    env = {}
    for item in raw.split(b"\0"):
        k, eq, v = item.decode(errors="replace").partition("=")
        if eq and k.startswith(_ENV_PREFIX):
            env[k] = v
    return env


def _cwd(proc: Path, pid: int) -> Path | None:
    try:
        return Path(os.readlink(proc / str(pid) / "cwd"))
    except OSError:
        return None


def _require_llama_server(s: HostServer, argv: list[str], model_arg: str) -> None:
    """The PID must be a llama-server: its executable is one, or its model is a GGUF file.  An
    `-m` alone proves nothing: `python -m pytest` has one, and `pytest` would be read as a model."""
    if Path(argv[0]).name.startswith("llama-server") or model_arg.lower().endswith(".gguf"):
        return
    shown = " ".join(argv[:3]) + (" ..." if len(argv) > 3 else "")
    raise UsageError(f"--server {s.name}: process {s.pid} runs `{shown}`, not a llama-server "
                     "(its executable is not llama-server and its -m names no .gguf file): "
                     "give the llama-server's own PID")


def host_services(servers: Iterable[HostServer], proc_root: Path = Path("/proc")
                  ) -> list[ModelServer]:
    """The servers `run_gpu_report` takes, for servers named by PID (and log file).

    A relative `-m` is resolved against the process's working directory, as the server did."""
    out = []
    for s in servers:
        argv = _read_argv(proc_root, s.pid)
        env = _read_env(proc_root, s.pid)
        log_text = None
        if s.log is not None:
            try:
                log_text = s.log.read_text(encoding="utf-8", errors="replace")
            except OSError as exc:
                raise UsageError(f"--server {s.name}: cannot read log file {s.log}: "
                                 f"{exc.strerror}") from None
        try:
            model_arg = parse_server_args(argv, env).model_arg
        except ConfigError as exc:
            raise UsageError(f"--server {s.name} (PID {s.pid}): {exc}") from None
        if not model_arg:
            # most often the PID of a wrapper (a shell, `timeout`, a subshell's $!), whose memory
            # NVML would not list either: say so now rather than report a server with no plan
            raise UsageError(f"--server {s.name}: process {s.pid} ({Path(argv[0]).name}) names no "
                             "model (-m or LLAMA_ARG_MODEL): give the llama-server's own PID")
        _require_llama_server(s, argv, model_arg)
        model = Path(model_arg).expanduser()
        if not model.is_absolute():
            cwd = _cwd(proc_root, s.pid)
            model = (cwd / model) if cwd else model
        out.append(ModelServer(name=s.name, argv=argv, env=env, model_path=model, pid=s.pid,
                               log_text=log_text))
    return out


__all__ = ["HostServer", "host_services", "parse_host_server", "parse_host_servers"]
