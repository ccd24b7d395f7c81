"""The command line's addresses: `--listen HOST:PORT` (checked while options are parsed, bound
before the stack is asked anything) and `--target NAME:ROLE=URL` (a service outside Docker).

Standard library only: these run in option callbacks, and `llmops --help` must stay light.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse

from ..errors import EnvironmentProblem, UsageError
from ..ports import process_holding
from ..stack import Role

DEFAULT_LISTEN = "127.0.0.1:9464"


@dataclass(frozen=True)
class Listen:
    host: str
    port: int            # 0: the kernel picks one (tests); the bound port is the server's

    @property
    def family(self) -> int:
        return socket.AF_INET6 if ":" in self.host else socket.AF_INET

    def shown(self, port: int | None = None) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port if port is None else port}"


def parse_listen(value: str, allow_public: bool = False) -> Listen:
    """`HOST:PORT` with HOST an IP address (or `localhost`), loopback unless `allow_public`: the
    metrics name every service, its health and the GPU, and whoever can reach the port reads them."""
    text = value.strip()
    host, sep, port_text = text.rpartition(":")
    if not sep or not host:
        raise UsageError(f"--listen {value!r}: expected HOST:PORT, for example {DEFAULT_LISTEN}")
    if not port_text.isascii() or not port_text.isdigit() or int(port_text) > 65535:
        raise UsageError(f"--listen {value!r}: the port must be a number 0-65535")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise UsageError(f"--listen {value!r}: write an IPv6 address in brackets ([::1]:9464)")
    if host == "localhost":
        host = "127.0.0.1"
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise UsageError(f"--listen {value!r}: {host!r} is not an IP address (for example 127.0.0.1)") from None
    if not ip.is_loopback and not allow_public:
        raise UsageError(f"--listen {value}: {host} is not a loopback address: anyone on that network could read "
                         "the stack's metrics; pass --allow-public-listen to mean it")
    return Listen(str(ip), int(port_text))


class _Server(ThreadingHTTPServer):
    daemon_threads = True


class _Server6(_Server):
    address_family = socket.AF_INET6


def bind(listen: Listen, handler: type[BaseHTTPRequestHandler]) -> ThreadingHTTPServer:
    """The HTTP server, bound and listening (not yet serving), or one line naming who holds the
    port (from /proc/net/tcp and /proc/*/fd; just the port when that is not ours to see)."""
    cls = _Server6 if listen.family == socket.AF_INET6 else _Server
    try:
        return cls((listen.host, listen.port), handler)
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            who = process_holding(listen.port)
            raise EnvironmentProblem(f"--listen {listen.shown()}: port {listen.port} is already taken"
                                     + (f" by {who}" if who else "") + "; pick another port") from None
        if e.errno == errno.EADDRNOTAVAIL:
            raise EnvironmentProblem(f"--listen {listen.shown()}: {listen.host} is not an address of this machine") from None
        if e.errno == errno.EACCES:
            raise EnvironmentProblem(f"--listen {listen.shown()}: port {listen.port} needs privileges; "
                                     "use a port above 1023") from None
        raise EnvironmentProblem(f"--listen {listen.shown()}: {e.strerror or e}") from None


# A service given on the command line (no Docker): its health path and what its health answer
# must look like follow from its role, as the compose files' labels say for llmops' own stack.
ROLE_HEALTH = {
    Role.GATEWAY: ("/health/liveliness", "litellm"),
    Role.PRIMARY: ("/health", "llama"),
    Role.SECONDARY: ("/health", "llama"),
    Role.EMBEDDING: ("/health", "llama"),
    Role.RAG: ("/health", "rag"),
    Role.VECTORDB: ("/readyz", "qdrant"),
}


@dataclass(frozen=True)
class TargetSpec:
    name: str
    role: str
    base_url: str
    health_path: str
    expect: str


def parse_target(value: str) -> TargetSpec:
    """`NAME:ROLE=URL`, URL on loopback (probes never leave this machine: the gateway's probe
    carries its key); a path in URL is the health path, else the role's own."""
    head, sep, url = value.partition("=")
    name, colon, role = head.partition(":")
    if not sep or not colon or not name or not url:
        raise UsageError(f"--target {value!r}: expected NAME:ROLE=URL, for example "
                         "inference-chat:inference-primary=http://127.0.0.1:8001")
    if role not in ROLE_HEALTH:
        raise UsageError(f"--target {value!r}: unknown role {role!r}; valid: {', '.join(Role.ALL)}")
    u = urlparse(url)
    try:
        port = u.port
    except ValueError:
        port = None
    if u.scheme != "http" or not u.hostname or port is None:
        raise UsageError(f"--target {value!r}: the URL must be http://HOST:PORT")
    host = "127.0.0.1" if u.hostname == "localhost" else u.hostname
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise UsageError(f"--target {value!r}: {u.hostname} is not a loopback address; probes stay on this machine")
    path, expect = ROLE_HEALTH[role]
    shown_host = f"[{host}]" if ":" in host else host
    return TargetSpec(name, role, f"http://{shown_host}:{port}", u.path if u.path not in ("", "/") else path, expect)
