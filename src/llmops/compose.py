"""Run Docker Compose (v2 plugin or v1 `docker-compose`) on the project's compose files.

The compose files are the only description of the stack; this module just finds the right
binary, the right files for a profile, and the env file holding the per-install master key.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from .errors import ConfigError, EnvironmentProblem, UsageError

PROFILES = ("auto", "cpu", "gpu")
DEFAULT_PROJECT = "llmops"


def detect_compose() -> list[str]:
    """`docker compose` (v2) when present, else `docker-compose` (v1.29)."""
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True)
        if probe.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    raise EnvironmentProblem("neither `docker compose` nor `docker-compose` found: apt-get install docker-compose")


def resolve_profile(profile: str) -> str:
    """`auto` picks gpu only when NVML sees a GPU *and* Docker has the nvidia runtime."""
    if profile not in PROFILES:
        raise UsageError(f"unknown profile {profile!r}; valid: {', '.join(PROFILES)}")
    if profile != "auto":
        return profile
    try:
        import pynvml

        pynvml.nvmlInit()
        n = pynvml.nvmlDeviceGetCount()
        pynvml.nvmlShutdown()
    except Exception:  # noqa: BLE001 - no driver, no library: no GPU
        return "cpu"
    if n == 0:
        return "cpu"
    try:
        import docker

        runtimes = docker.from_env().info().get("Runtimes", {})
    except Exception:  # noqa: BLE001
        return "cpu"
    return "gpu" if "nvidia" in runtimes else "cpu"


@dataclass
class Compose:
    project_dir: Path
    profile: str = "cpu"
    project: str = DEFAULT_PROJECT

    @property
    def compose_dir(self) -> Path:
        return self.project_dir / "compose"

    @property
    def env_file(self) -> Path:
        return self.compose_dir / ".env"

    @property
    def files(self) -> list[Path]:
        files = [self.compose_dir / "docker-compose.yml", self.compose_dir / f"{self.profile}.yml"]
        for f in files:
            if not f.exists():
                raise ConfigError(f"compose file missing: {f}")
        return files

    @cached_property
    def binary(self) -> list[str]:
        return detect_compose()

    def base_argv(self) -> list[str]:
        argv = [*self.binary, "-p", self.project, "--project-directory", str(self.compose_dir)]
        for f in self.files:
            argv += ["-f", str(f)]
        if self.env_file.exists():
            argv += ["--env-file", str(self.env_file)]
        return argv

    def ensure_env(self) -> dict[str, str]:
        """Create compose/.env with a per-install master key; never overwrite what is there."""
        env = read_env_file(self.env_file)
        if "LITELLM_MASTER_KEY" not in env:
            key = "sk-llmops-" + secrets.token_urlsafe(24)
            # 0o600 at creation: the key is never readable by others, not even between create and chmod.
            fd = os.open(self.env_file, os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o600)
            with os.fdopen(fd, "a") as f:
                os.fchmod(fd, 0o600)  # an operator-made .env may be wider: narrow it before the key goes in
                f.write(f"LITELLM_MASTER_KEY={key}\n")
            env["LITELLM_MASTER_KEY"] = key
        return env

    def run(self, *args: str, check: bool = True, capture: bool = True,
            env: dict[str, str] | None = None, timeout: float | None = None) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([*self.base_argv(), *args], capture_output=capture, text=True,
                              env={**os.environ, **(env or {})}, timeout=timeout)
        if check and proc.returncode != 0:
            msg = (proc.stderr or proc.stdout or "").strip().splitlines()
            raise EnvironmentProblem(f"compose {args[0]} failed: {msg[-1] if msg else 'no output'}")
        return proc

    def config(self, env: dict[str, str] | None = None) -> dict[str, Any]:
        """The resolved configuration: what compose would actually run."""
        import yaml

        proc = self.run("config", check=False, env=env)
        if proc.returncode != 0:
            lines = (proc.stderr or "").strip().splitlines()
            raise ConfigError(f"compose config is invalid: {lines[-1] if lines else 'unknown error'}")
        try:
            return yaml.safe_load(proc.stdout)
        except yaml.YAMLError as e:
            raise ConfigError(f"compose config is not YAML: {e}") from None

    @cached_property
    def documents(self) -> list[dict[str, Any]]:
        """The compose files as written (before interpolation), each read once."""
        return load_compose_files(self.files)

    def declared(self) -> list[str]:
        """Service names as the compose files declare them (a later file only overrides)."""
        return declared_services(self.documents)

    def port_variables(self) -> dict[str, str]:
        """service -> the variable that sets its host port (`"${CHAT_PORT:-8001}:8080"`)."""
        out = {}
        for doc in self.documents:
            for name, svc in (doc.get("services") or {}).items():
                for p in (svc or {}).get("ports") or []:
                    m = re.search(r":\$\{(\w+)(?::-[^}]*)?\}:", str(p))
                    if m:
                        out[name] = m.group(1)
        return out

    def config_hash(self) -> str:
        h = hashlib.sha256()
        for f in self.files:
            h.update(f.read_bytes())
        return h.hexdigest()[:16]


def load_compose_files(files: list[Path]) -> list[dict[str, Any]]:
    """Each compose file parsed, or ConfigError naming the file and line."""
    import yaml

    from .validate import read_config_text

    docs = []
    for f in files:
        try:
            doc = yaml.safe_load(read_config_text(f, "compose file")) or {}
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f" line {mark.line + 1}" if mark else ""
            raise ConfigError(f"{f.name}{where}: malformed YAML") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("services", {}), dict):
            raise ConfigError(f"{f.name}: `services` must be a mapping")
        docs.append(doc)
    return docs


def declared_services(docs: list[dict[str, Any]]) -> list[str]:
    """Service names as compose documents declare them (a later one only overrides)."""
    return sorted({n for doc in docs for n in doc.get("services") or {}})


def published_ports(config: dict[str, Any]) -> dict[int, str]:
    """host port -> service, from the resolved compose config (v1 short or v2 long syntax)."""
    out: dict[int, str] = {}
    for name, svc in (config.get("services") or {}).items():
        for p in svc.get("ports") or []:
            if isinstance(p, dict):
                pub = p.get("published")
            else:  # "127.0.0.1:8001:8080/tcp" or "8001:8080"
                parts = str(p).split("/")[0].split(":")
                pub = parts[-2] if len(parts) >= 2 else None
            if pub not in (None, ""):
                out[int(pub)] = name
    return out


_ENV_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")


def read_env_file(path: Path) -> dict[str, str]:
    """compose/.env as KEY=VALUE pairs.  Bytes that are not UTF-8 or a line that is not a pair
    (compose would misread it or refuse it later, less clearly) are a ConfigError naming the line."""
    out: dict[str, str] = {}
    if not path.exists():
        return out
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path} is not UTF-8 text (byte {e.start}); rewrite it as UTF-8") from None
    except OSError as e:
        raise ConfigError(f"{path} cannot be read: {e.strerror or e}") from None
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):  # compose accepts shell-style `export KEY=VALUE`
            line = line[len("export "):].lstrip()
        k, sep, v = line.partition("=")
        k = k.strip()
        if not sep or not _ENV_KEY.fullmatch(k):
            shown = line if len(line) <= 12 else line[:12] + "..."  # a bad line may still hold a secret
            raise ConfigError(f"{path}:{n}: not a KEY=VALUE line: {shown!r}")
        out[k] = v.strip().strip('"').strip("'")
    return out
