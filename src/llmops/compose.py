"""Run Docker Compose (v2 plugin or v1 `docker-compose`) on the project's compose files.

The compose files are the only description of the stack; this module just finds the right
binary, the right files, and the env file.  Which files, as compose itself would take them:
the `--compose-file` options given, else `COMPOSE_FILE`, else llmops' own demo layout
(`compose/docker-compose.yml` + `compose/<profile>.yml`), else compose's default names in the
project folder (`compose.yaml` ... plus its override file).  `llmops adopt`'s override file
(`llmops.adopt.yml` beside them) is added last when it exists, so its labels apply to every command.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import shutil
import subprocess
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import Any, Mapping

from .errors import ConfigError, EnvironmentProblem, UsageError

PROFILES = ("auto", "cpu", "gpu")
DEFAULT_PROJECT = "llmops"          # the demo layout's project name, unless told otherwise
# Compose's own default file names, in its order of preference, and its override files.
DEFAULT_FILE_NAMES = ("compose.yaml", "compose.yml", "docker-compose.yml", "docker-compose.yaml")
OVERRIDE_FILE_NAMES = ("compose.override.yaml", "compose.override.yml", "docker-compose.override.yml",
                       "docker-compose.override.yaml")
ADOPT_FILE = "llmops.adopt.yml"     # written by `llmops adopt --write`; never one of the user's files
_PROJECT_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*")


def is_demo_layout(project_dir: Path) -> bool:
    """llmops' own stack: compose/docker-compose.yml under the project folder."""
    return (project_dir / "compose" / "docker-compose.yml").is_file()


def has_compose_files(d: Path) -> bool:
    return is_demo_layout(d) or any((d / n).is_file() for n in DEFAULT_FILE_NAMES)


@dataclass(frozen=True)
class Layout:
    """Which compose files, and the folder compose treats as the project's (its `.env` is there)."""

    files: tuple[Path, ...]
    directory: Path
    demo: bool
    source: str                     # how the files were chosen, for messages

    @property
    def env_file(self) -> Path:
        return self.directory / ".env"


def find_layout(project_dir: Path, profile: str, explicit: tuple[Path, ...] = (),
                environ: dict[str, str] | None = None) -> Layout:
    """The compose files compose itself would use for this project, or ConfigError naming what
    was looked for.  Relative paths (options, COMPOSE_FILE) are taken from the project folder."""
    env = os.environ if environ is None else environ
    if explicit:
        files, source = [f if f.is_absolute() else project_dir / f for f in explicit], "--compose-file"
    elif env.get("COMPOSE_FILE", "").strip():
        sep = env.get("COMPOSE_PATH_SEPARATOR") or os.pathsep
        files = [Path(p) if Path(p).is_absolute() else project_dir / p
                 for p in env["COMPOSE_FILE"].split(sep) if p.strip()]
        source = "COMPOSE_FILE"
    elif is_demo_layout(project_dir):
        d = project_dir / "compose"
        files, source = [d / "docker-compose.yml", d / f"{profile}.yml"], f"llmops' layout ({profile} profile)"
        for f in files:
            if not f.exists():
                raise ConfigError(f"compose file missing: {f}")
        return _with_adopt(Layout(tuple(files), d, True, source))
    else:
        first = next((project_dir / n for n in DEFAULT_FILE_NAMES if (project_dir / n).is_file()), None)
        if first is None:
            raise ConfigError(f"no compose file in {project_dir} (looked for {', '.join(DEFAULT_FILE_NAMES)} "
                              f"and compose/docker-compose.yml); pass --project-dir or --compose-file")
        over = next((project_dir / n for n in OVERRIDE_FILE_NAMES if (project_dir / n).is_file()), None)
        files, source = [first, *([over] if over else [])], "compose's default file names"
    for f in files:
        if not f.is_file():
            raise ConfigError(f"compose file missing: {f} (from {source})")
    files = [f.resolve() for f in files]
    return _with_adopt(Layout(tuple(files), files[0].parent, False, source))


def _with_adopt(layout: Layout) -> Layout:
    adopt = layout.directory / ADOPT_FILE
    if adopt.is_file() and adopt not in layout.files:
        return Layout((*layout.files, adopt), layout.directory, layout.demo, layout.source + f" + {ADOPT_FILE}")
    return layout


def project_name(explicit: str | None, layout: Layout, environ: dict[str, str] | None = None) -> str:
    """Compose's own rule: --project-name, else COMPOSE_PROJECT_NAME (environment, then the
    project's .env), else the first file's top-level `name:`, else the project folder's name
    (lower-cased, other characters dropped).  The demo layout's default is `llmops`."""
    env = os.environ if environ is None else environ
    name = explicit or env.get("COMPOSE_PROJECT_NAME") or read_env_file(layout.env_file).get("COMPOSE_PROJECT_NAME")
    where = "--project-name" if explicit else "COMPOSE_PROJECT_NAME"
    if not name:
        top = _top_level_name(layout.files[0])
        if top:
            name, where = top, f"`name:` in {layout.files[0].name}"
        elif layout.demo:
            return DEFAULT_PROJECT
        else:
            folder = layout.directory.name
            name, where = re.sub(r"[^a-z0-9_-]", "", folder.lower()), f"the folder name {folder!r}"
    if not _PROJECT_NAME.fullmatch(name):
        raise ConfigError(f"compose project name {name!r} (from {where}) must be lower-case letters, digits, "
                          f"'-' and '_', starting with a letter or digit; pass --project-name")
    return name


def _top_level_name(f: Path) -> str | None:
    try:
        doc = load_compose_files([f])[0]
    except ConfigError:
        return None
    value = doc.get("name")
    return value if isinstance(value, str) and value else None


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
    explicit_files: tuple[Path, ...] = ()

    @cached_property
    def layout(self) -> Layout:
        return find_layout(self.project_dir, self.profile, self.explicit_files)

    @property
    def compose_dir(self) -> Path:
        """The folder compose treats as the project's (demo: compose/)."""
        return self.layout.directory

    @property
    def env_file(self) -> Path:
        return self.layout.env_file

    @property
    def files(self) -> list[Path]:
        return list(self.layout.files)

    @property
    def demo(self) -> bool:
        return self.layout.demo

    def add_files(self, *files: Path) -> None:
        """Compose files after the layout's, for every later call (`up --monitoring`'s file)."""
        self.__dict__["layout"] = replace(self.layout, files=(*self.layout.files, *files))
        self.__dict__.pop("documents", None)

    @cached_property
    def binary(self) -> list[str]:
        return detect_compose()

    def base_argv(self, without_adopt: bool = False) -> list[str]:
        argv = [*self.binary, "-p", self.project, "--project-directory", str(self.compose_dir)]
        for f in self.files:
            if without_adopt and f.name == ADOPT_FILE:
                continue
            argv += ["-f", str(f)]
        if self.env_file.exists():
            argv += ["--env-file", str(self.env_file)]
        return argv

    def ensure_env(self) -> dict[str, str]:
        """Create compose/.env with a per-install master key; never overwrite what is there.  Only
        in llmops' own layout: a user's `.env` is theirs, and their gateway has its own key."""
        env = read_env_file(self.env_file)
        if self.demo and "LITELLM_MASTER_KEY" not in env:
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

    def config(self, env: dict[str, str] | None = None, without_adopt: bool = False) -> dict[str, Any]:
        """The resolved configuration: what compose would actually run (`without_adopt`: from the
        user's files alone, as `llmops adopt` reads them)."""
        import yaml

        proc = subprocess.run([*self.base_argv(without_adopt), "config"], capture_output=True, text=True,
                              env={**os.environ, **(env or {})})
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


_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


def interpolate(text: str, env: Mapping[str, str], where: str) -> str:
    """Compose's `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:?message}` and
    `${VAR?message}` in one value, without running compose (gpu-plan needs no Docker).  A required
    variable that is unset is a ConfigError naming `where` and the variable."""
    def sub(m: re.Match[str]) -> str:
        name, op, arg = m.group(1), m.group(2), m.group(3) or ""
        val = env.get(name)
        if op in (":-", "-"):
            return val if val not in (None, "") or (op == "-" and val is not None) else arg
        if op in (":?", "?") and not val:
            raise ConfigError(f"{where}: {arg or name + ' is not set'} (set {name} in "
                              "compose/.env or the environment)")
        return val or ""
    return _VAR.sub(sub, text)


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
