"""Host PID -> container ID -> compose service.

NVML reports PIDs in the *host's* PID namespace.  We read `/proc/<pid>/cgroup` to find the
container (cgroup v1 and v2; docker, containerd/CRI, podman path forms), then map the container
to its compose service: first through the containers the caller already knows, then through an
injectable resolver (by default the container's compose-service label, `stack.SERVICE_LABEL`,
through the Docker SDK imported lazily).  A server that runs as a plain host process (no Docker)
is named by its PID instead (`gpu-report --server NAME=PID`).  What cannot be mapped is reported
as `unattributed`.  When PIDs cannot be resolved at all (NVML PIDs absent from our /proc: WSL,
MIG, a PID namespace) we say so instead of guessing.  Running inside a container is not such a case by itself: with docker-in-docker the
engine's containers are visible in our /proc with their Docker cgroups.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from ..stack import SERVICE_LABEL

# A container ID is 64 hex digits; it appears as a path segment or after a runtime prefix:
#   v1:  12:memory:/docker/<id>            v1 k8s: .../kubepods/burstable/pod<uid>/<id>
#   v2:  0::/system.slice/docker-<id>.scope                      (docker, systemd driver)
#        0::/system.slice/cri-containerd-<id>.scope               (containerd CRI)
#        0::/kubepods.slice/...:cri-containerd:<id>               (cgroupfs-style CRI)
#        0::/machine.slice/libpod-<id>.scope                      (podman)
#        0::/default/<id>                                         (nerdctl / containerd)
#        0::/docker/<id>                                          (docker, cgroupfs driver)
_ID_RE = re.compile(r"(?:^|[/:\-])([0-9a-f]{64})(?:\.scope)?(?=$|[/:])")

Resolver = Callable[[str], "str | None"]


def container_id_from_cgroup(text: str) -> str | None:
    """The container ID in a /proc/<pid>/cgroup file's text, or None for a host process."""
    found: str | None = None
    for line in text.splitlines():
        # "hierarchy-ID:controller-list:cgroup-path"; the path may itself contain ':'
        parts = line.split(":", 2)
        path = parts[2] if len(parts) == 3 else line
        for m in _ID_RE.finditer(path):
            found = m.group(1)          # the innermost (last) ID wins
    return found


def detect_in_container(proc_root: Path = Path("/proc"), root: Path = Path("/")) -> str | None:
    """Why we believe llmops itself runs inside a container, or None."""
    for marker in (".dockerenv", "run/.containerenv"):
        if (root / marker).exists():
            return f"/{marker} exists"
    try:
        text = (proc_root / "1" / "cgroup").read_text()
    except OSError:
        return None
    cid = container_id_from_cgroup(text)
    if cid:
        return f"/proc/1/cgroup names container {cid[:12]}"
    return None


@dataclass
class PidInfo:
    pid: int
    visible: bool                  # /proc/<pid> exists in our namespace
    container_id: str | None = None
    service: str | None = None
    comm: str | None = None
    via: str | None = None         # "pid" | "services" | "resolver" | None
    note: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"pid": self.pid, "visible": self.visible, "container_id": self.container_id,
                "service": self.service, "comm": self.comm, "via": self.via, "note": self.note}


@dataclass
class Attribution:
    mode: str                                   # "host" | "unavailable"
    reason: str | None
    pids: dict[int, PidInfo] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"mode": self.mode, "reason": self.reason, "notes": self.notes,
                "pids": {str(k): v.to_json() for k, v in sorted(self.pids.items())}}


def docker_label_resolver(label: str = SERVICE_LABEL) -> Resolver:
    """A resolver that asks the Docker engine for a container's compose-service label.

    The SDK is imported on first use; when Docker is absent or unreachable it answers None."""
    state: dict[str, Any] = {}

    def resolve(container_id: str) -> str | None:
        if "client" not in state:
            try:
                import docker  # noqa: PLC0415 - lazy on purpose
                state["client"] = docker.from_env(timeout=5)
            except Exception as exc:
                state["client"] = None
                state["error"] = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        client = state["client"]
        if client is None:
            return None
        try:
            c = client.containers.get(container_id)
            return (c.labels or {}).get(label)
        except Exception:
            return None

    resolve.state = state  # type: ignore[attr-defined]
    return resolve


class Attributor:
    def __init__(self, *, proc_root: Path = Path("/proc"), root: Path = Path("/"),
                 known: Mapping[str, str] | None = None,
                 resolver: Resolver | None = None,
                 in_container: str | None | bool = False,
                 pids: Mapping[int, str] | None = None) -> None:
        """`known`: container ID (full or short) -> service, from the caller's discovery.
        `resolver`: fallback container ID -> service.  `in_container`: False to detect it,
        None to assert we run on the host, or a reason string to assert we do not.
        `pids`: host PID -> service, for servers the user named by PID (no container)."""
        self.proc_root = proc_root
        self.root = root
        self.known = {k.lower(): v for k, v in (known or {}).items() if k}
        self.resolver = resolver
        self.pids = {int(k): v for k, v in (pids or {}).items()}
        self._in_container = in_container
        self._cache: dict[str, str | None] = {}

    def _service_for(self, cid: str) -> tuple[str | None, str | None]:
        for k, svc in self.known.items():
            if cid.startswith(k) or k.startswith(cid):
                return svc, "services"
        if self.resolver is None:
            return None, None
        if cid not in self._cache:
            self._cache[cid] = self.resolver(cid)
        svc = self._cache[cid]
        return (svc, "resolver") if svc else (None, None)

    def attribute(self, pids: Iterable[int]) -> Attribution:
        pids = sorted(set(int(p) for p in pids))
        # Running inside a container is no reason to give up: with docker-in-docker (CI runners)
        # or a host /proc mount, the engine's containers are visible in our /proc with their
        # Docker cgroups.  Attribute what is visible; "unavailable" only when nothing is.
        inside = detect_in_container(self.proc_root, self.root) if self._in_container is False \
            else self._in_container
        att = Attribution(mode="host", reason=None)
        for p in pids:
            att.pids[p] = self._one(p)
        invisible = [p for p in pids if not att.pids[p].visible]
        if pids and len(invisible) == len(pids):
            att.mode = "unavailable"
            att.reason = ("none of the PIDs NVML reports exist in our /proc (a PID namespace, "
                          "WSL or MIG); per-process attribution is not possible"
                          + (f"; llmops runs inside a container ({inside})" if inside else ""))
        elif pids and not any(i.container_id or i.via == "pid" for i in att.pids.values()) and inside:
            # worth saying only when nothing was attributed otherwise (servers named by PID are)
            att.notes.append(f"llmops runs inside a container ({inside}) and no GPU PID carries a "
                             "container cgroup")
        elif invisible:
            att.notes.append(f"PIDs not in our /proc: {', '.join(map(str, invisible))}")
        if self.resolver is not None:
            err = getattr(self.resolver, "state", {}).get("error")
            if err:
                att.notes.append(f"docker label lookup unavailable: {err}")
        return att

    def _one(self, pid: int) -> PidInfo:
        d = self.proc_root / str(pid)
        try:
            cg = (d / "cgroup").read_text()
        except FileNotFoundError:
            return PidInfo(pid=pid, visible=False, note="no such PID in /proc")
        except OSError as exc:
            info = PidInfo(pid=pid, visible=True, note=f"cgroup unreadable: {exc.strerror}")
            if pid in self.pids:
                info.service, info.via = self.pids[pid], "pid"
            return info
        try:
            comm = (d / "comm").read_text().strip() or None
        except OSError:
            comm = None
        cid = container_id_from_cgroup(cg)
        info = PidInfo(pid=pid, visible=True, container_id=cid, comm=comm)
        if pid in self.pids:            # named by the user: that says more than any cgroup
            info.service, info.via = self.pids[pid], "pid"
            return info
        if cid is None:
            info.note = "host process (no container in its cgroup)"
            return info
        info.service, info.via = self._service_for(cid)
        if info.service is None:
            info.note = "container not mapped to a compose service"
        return info
