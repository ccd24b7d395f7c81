"""manifest.json: what a run ran on, written once per run and read back by the report.

One dataclass serves the writer (:func:`collect`, via ``Context.manifest()``) and the reader
(:meth:`Manifest.from_json`, in the report), so the two cannot drift apart on key names again.
The JSON layout is the one earlier versions wrote (``host``, ``engine``, ``images``, ``router``,
``gpu``), plus ``host.os`` and ``created_at``; ``from_json`` takes older and partial files and
never raises on a missing or mistyped field: the report must render whatever a run left behind.
"""

from __future__ import annotations

import json
import os
import platform
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from . import __version__
from .errors import LlmopsError

if TYPE_CHECKING:
    from .compose import Compose
    from .stack import Service

SCHEMA = "llmops.manifest/1"


def _str(v: Any) -> str | None:
    if v is None or isinstance(v, (dict, list)):
        return None
    s = str(v).strip()
    return s or None


def _int(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def _dict(v: Any) -> dict[str, Any]:
    return v if isinstance(v, dict) else {}


@dataclass
class Host:
    name: str | None = None
    os: str | None = None          # "Debian GNU/Linux 12 (bookworm)", else platform.platform()
    kernel: str | None = None
    machine: str | None = None
    python: str | None = None
    cpus: int | None = None

    @classmethod
    def from_json(cls, d: Any) -> "Host":
        if isinstance(d, str):      # a bare host name, as some hand-made files have it
            return cls(name=_str(d))
        d = _dict(d)
        return cls(name=_str(d.get("name") or d.get("hostname")), os=_str(d.get("os") or d.get("platform")),
                   kernel=_str(d.get("kernel")), machine=_str(d.get("machine")),
                   python=_str(d.get("python")), cpus=_int(d.get("cpus")))


@dataclass
class Engine:
    docker: str | None = None      # the engine's version, as `docker version` says
    api: str | None = None

    @classmethod
    def from_json(cls, d: Any) -> "Engine":
        d = _dict(d)
        return cls(docker=_str(d.get("docker") or d.get("version")), api=_str(d.get("api")))

    def to_json(self) -> dict[str, Any]:
        # No engine answered: `{}`, as before (gpu-report on a GPU box without Docker).
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass
class Image:
    image: str | None = None       # the tag the container was created from
    id: str | None = None          # sha256:...
    build_hash: str | None = None  # our llmops.build-hash label, when we built it

    @classmethod
    def from_json(cls, d: Any) -> "Image":
        if isinstance(d, str):      # older/hand-made files: just an id
            return cls(id=_str(d))
        d = _dict(d)
        return cls(image=_str(d.get("image")), id=_str(d.get("id")), build_hash=_str(d.get("build_hash")))


def _float(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


@dataclass
class GpuDevice:
    """One GPU as the GPU check saw it (`gpu.sampling.Recording.gpu_env`)."""

    name: str
    index: int | None = None          # NVML's index, as --device takes it
    uuid: str | None = None
    total_mib: float | None = None
    memory_api: str | None = None     # "v2" (reserved memory known) or "v1"
    mig_enabled: bool | None = None   # None: NVML could not say

    @classmethod
    def from_json(cls, d: Any) -> "GpuDevice | None":
        if isinstance(d, str):      # older files: just the name
            return cls(name=d) if d.strip() else None
        d = _dict(d)
        name = _str(d.get("name"))
        if not name:
            return None
        mig = d.get("mig_enabled")
        return cls(name=name, index=_int(d.get("index")), uuid=_str(d.get("uuid")),
                   total_mib=_float(d.get("total_mib")), memory_api=_str(d.get("memory_api")),
                   mig_enabled=mig if isinstance(mig, bool) else None)

    def label(self) -> str:
        size = f", {self.total_mib / 1024:.0f} GiB" if self.total_mib else ""
        return f"{self.name}{size}"


@dataclass
class GpuEnv:
    """The GPU environment NVML reported; every field is None where it was not known."""

    driver_version: str | None = None
    cuda_driver_version: str | None = None
    nvml_version: str | None = None
    devices: list[GpuDevice] = field(default_factory=list)    # in index order

    @classmethod
    def from_json(cls, d: Any) -> "GpuEnv | None":
        if not isinstance(d, dict):
            return None
        devs = d.get("devices")
        devices = [g for g in (GpuDevice.from_json(x) for x in devs) if g] if isinstance(devs, list) else []
        if not devices and _str(d.get("name")):
            devices = [GpuDevice(name=str(d["name"]))]
        env = cls(driver_version=_str(d.get("driver_version") or d.get("driver")),
                  cuda_driver_version=_str(d.get("cuda_driver_version") or d.get("cuda_version")
                                           or d.get("cuda")),
                  nvml_version=_str(d.get("nvml_version")),
                  devices=devices)
        return env if env != cls() else None


@dataclass
class Manifest:
    tool: str = "llmops"
    version: str | None = None
    git_sha: str | None = None
    project: str | None = None
    profile: str | None = None
    compose_files: list[str] = field(default_factory=list)
    compose_config_hash: str | None = None
    compose_binary: str | None = None
    host: Host = field(default_factory=Host)
    engine: Engine = field(default_factory=Engine)
    images: dict[str, Image] = field(default_factory=dict)
    router: dict[str, Any] | None = None     # gateway_config.summarize(...).to_json()
    # Roles no service of the stack has: their checks are "not in this stack" (not failed, not skipped).
    absent_roles: list[str] = field(default_factory=list)
    gpu: GpuEnv | None = None
    created_at: str | None = None
    # Why part of the manifest is missing (a malformed gateway config, an engine that broke mid-way):
    # written out, so the report shows it instead of the run losing its report to a crash.
    manifest_error: str | None = None

    def to_json(self) -> dict[str, Any]:
        extra = {"manifest_error": self.manifest_error} if self.manifest_error else {}
        return {
            "schema": SCHEMA, "tool": self.tool, "version": self.version, "git_sha": self.git_sha,
            "project": self.project, "profile": self.profile, "compose_files": list(self.compose_files),
            "compose_config_hash": self.compose_config_hash, "compose_binary": self.compose_binary,
            "host": asdict(self.host), "engine": self.engine.to_json(),
            "images": {n: asdict(i) for n, i in self.images.items()},
            "router": self.router, "absent_roles": list(self.absent_roles),
            "gpu": asdict(self.gpu) if self.gpu else None,
            "created_at": self.created_at, **extra,
        }

    @classmethod
    def from_json(cls, d: Any) -> "Manifest":
        d = _dict(d)
        images = d.get("images")
        files = d.get("compose_files")
        return cls(
            tool=_str(d.get("tool")) or "llmops",
            version=_str(d.get("version") or d.get("tool_version")),
            git_sha=_str(d.get("git_sha")),
            project=_str(d.get("project") or d.get("compose_project")),
            profile=_str(d.get("profile")),
            compose_files=[str(f) for f in files] if isinstance(files, list) else [],
            compose_config_hash=_str(d.get("compose_config_hash")),
            compose_binary=_str(d.get("compose_binary")),
            host=Host.from_json(d.get("host")),
            engine=Engine.from_json(d.get("engine")),
            images={str(n): Image.from_json(i) for n, i in images.items()} if isinstance(images, dict) else {},
            router=d.get("router") if isinstance(d.get("router"), dict) else None,
            gpu=GpuEnv.from_json(d.get("gpu")),
            created_at=_str(d.get("created_at")),
            manifest_error=_str(d.get("manifest_error")),
        )

    @classmethod
    def read(cls, path: Path) -> "Manifest":
        """Parse a manifest.json; ValueError (JSONDecodeError, UnicodeDecodeError) when unreadable."""
        return cls.from_json(json.loads(Path(path).read_text(encoding="utf-8")))


def os_name(os_release: Path = Path("/etc/os-release")) -> str:
    """The distribution's PRETTY_NAME, else what Python's platform module says."""
    try:
        for line in os_release.read_text(encoding="utf-8", errors="replace").splitlines():
            key, _, value = line.partition("=")
            if key.strip() == "PRETTY_NAME" and value.strip():
                return value.strip().strip("'\"")
    except OSError:
        pass
    return platform.platform()


def host_info() -> Host:
    return Host(name=platform.node() or None, os=os_name(), kernel=platform.release() or None,
                machine=platform.machine() or None, python=platform.python_version(), cpus=os.cpu_count())


def gpu_env_from_run(run_path: Path | None) -> GpuEnv | None:
    """The driver/CUDA versions and device names the GPU check recorded in 06_gpu_memory.json."""
    if run_path is None:
        return None
    from .evidence import CHECK_FILES

    try:
        check = json.loads((Path(run_path) / f"{CHECK_FILES['gpu']}.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return GpuEnv.from_json(_dict(check).get("details"))


@dataclass
class Sources:
    """Where :func:`collect` looks.  ``docker`` and ``services`` are called only inside collect,
    so that a missing engine is caught there and the manifest is still written without one."""

    project_dir: Path
    project: str
    profile: str
    compose: "Compose"
    docker: Callable[[], Any]
    services: Callable[[], "list[Service]"]
    git_sha: str | None = None


def collect(src: Sources, *, gpu_env: Any = None, run_path: Path | None = None) -> Manifest:
    """Everything the run ran on.  Each part is best-effort: no engine, no compose binary or no GPU
    still gives a manifest (a GPU box may run gpu-report with no Docker at all).

    ``gpu_env`` is what the gpu check added to the manifest (through the runner), if anything,
    else the versions come from the run's 06_gpu_memory.json."""
    from .evidence import utc_now_iso

    m = Manifest(version=__version__, git_sha=src.git_sha, project=src.project, profile=src.profile,
                 compose_files=[_shown_path(f, src.project_dir) for f in src.compose.files],
                 compose_config_hash=src.compose.config_hash(), host=host_info(), created_at=utc_now_iso())
    errors: list[str] = []
    gateway_attrs = _engine_part(m, src, errors)
    if gateway_attrs is not None:
        _router_part(m, gateway_attrs, errors)
    try:
        m.compose_binary = " ".join(src.compose.binary)
    except LlmopsError:
        pass
    m.gpu = GpuEnv.from_json(gpu_env) or gpu_env_from_run(run_path)
    m.manifest_error = "; ".join(errors) or None
    return m


def _engine_part(m: Manifest, src: Sources, errors: list[str]) -> dict[str, Any] | None:
    """The engine, the images and the roles the stack lacks; the gateway's inspect, if one runs."""
    from .build import HASH_LABEL
    from .stack import Role

    gateway_attrs: dict[str, Any] | None = None
    try:
        client = src.docker()
        info = client.version()
        m.engine = Engine(docker=_str(info.get("Version")), api=_str(info.get("ApiVersion")))
        found = src.services()
        if found:
            m.absent_roles = [r for r in Role.ALL if r not in {s.role for s in found}]
        for s in found:
            c = client.containers.get(s.container_id)
            m.images[s.name] = Image(image=c.attrs["Config"]["Image"], id=c.attrs["Image"],
                                     build_hash=(c.labels or {}).get(HASH_LABEL))
            if s.role == Role.GATEWAY:
                gateway_attrs = c.attrs
    except LlmopsError:
        pass    # no engine: a manifest without one (gpu-report on a GPU box without Docker)
    except Exception as e:  # noqa: BLE001 - the manifest is written after the checks: it must not lose them
        errors.append(f"engine: {error_line(e)}")
    return gateway_attrs


def _router_part(m: Manifest, gateway_attrs: dict[str, Any], errors: list[str]) -> None:
    """The gateway's router settings, as the running gateway reads them."""
    try:
        # imported here: a box without the gateway (gpu-report on a GPU host) needs no pydantic
        from .gateway_config import config_drift, mounted_config_path, summarize

        p = mounted_config_path(gateway_attrs)
        if p and p.exists():
            r = summarize(p)
            r.drift = config_drift(gateway_attrs, p)
            m.router = r.to_json()
    except Exception as e:  # noqa: BLE001 - a malformed config is the failover check's verdict, not a crash here
        errors.append(f"router: {error_line(e)}")


def error_line(e: BaseException) -> str:
    """An exception as one scrubbed line: what a manifest may hold of it."""
    from .redact import scrub

    text = str(e).strip().splitlines()
    msg = text[0] if text else ""
    return scrub(msg if isinstance(e, LlmopsError) else f"{type(e).__name__}: {msg}", limit=300)


def failed_manifest(e: BaseException, **known: Any) -> dict[str, Any]:
    """manifest.json when collecting it failed outright: the error, and what was known anyway."""
    return {"schema": SCHEMA, "tool": "llmops", "version": __version__, **known,
            "manifest_error": error_line(e)}


def _shown_path(f: Path, project_dir: Path) -> str:
    """A compose file relative to the project when it is inside it (a -f file may be anywhere)."""
    try:
        return str(f.relative_to(project_dir))
    except ValueError:
        return str(f)
