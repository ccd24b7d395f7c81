"""Reading one service of `docker compose config`: its argv, environment, ports and volumes in
either compose's spelling (v2's long forms, v1.29's strings), and what kind of server it runs,
told from its image and its command (never from its name)."""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from ..stack import compose_labels

# The container port each server listens on when its argv does not say (their own defaults).
LLAMA_DEFAULT_PORT = 8080      # llama-server --port
LITELLM_DEFAULT_PORT = 4000    # litellm --port (click default; env PORT)
QDRANT_DEFAULT_PORT = 6333     # Qdrant's REST port (env QDRANT__SERVICE__HTTP_PORT)

# Kinds of server, told from the image and the argv.
LLAMA, EMBEDDER, LITELLM, QDRANT = "llama-server", "llama-server --embeddings", "litellm", "qdrant"
_LLAMA_IMAGE = ("llama.cpp", "llama-cpp", "llama_cpp", "llama-server", "llmops/llama-")
_SHELLS = ("sh", "bash", "ash", "dash")


def _words(v: Any) -> list[str]:
    """A command/entrypoint as argv: compose v2 gives a list, v1.29 keeps a string as written."""
    if v is None:
        return []
    if isinstance(v, str):
        try:
            return shlex.split(v)
        except ValueError:          # unbalanced quotes: still good enough to look for flags in
            return v.split()
    if isinstance(v, list):
        return [str(x) for x in v]
    return []


def _argv(spec: Mapping[str, Any]) -> list[str]:
    argv = _words(spec.get("entrypoint")) + _words(spec.get("command"))
    # `sh -c "llama-server -m ... --port 9000"`: the program is inside the shell's one argument
    if argv and PurePosixPath(argv[0]).name in _SHELLS and "-c" in argv[1:-1]:
        script = argv[argv.index("-c") + 1]
        argv = argv[:argv.index("-c") + 1] + _words(script)
    return argv


def _env(spec: Mapping[str, Any]) -> dict[str, str]:
    raw = spec.get("environment") or {}
    if isinstance(raw, list):
        return {k: v for k, _, v in (str(x).partition("=") for x in raw)}
    if isinstance(raw, dict):
        return {str(k): "" if v is None else str(v) for k, v in raw.items()}
    return {}


def _after(argv: list[str], program: str) -> list[str]:
    """The arguments after the program's own element (all of argv when the image's entrypoint is
    the program and the compose file gives only its arguments): `python -m litellm -c x` must not
    lend python's `-m` to the parse."""
    for i, a in enumerate(argv):
        if PurePosixPath(a).name == program or a == program:
            return argv[i + 1:]
    return argv


def flag_value(args: list[str], *names: str) -> str | None:
    """The value of the last `--name VALUE` / `--name=VALUE` (the last one wins, as for click and
    llama.cpp's parser)."""
    value = None
    for i, a in enumerate(args):
        for n in names:
            if a == n and i + 1 < len(args):
                value = args[i + 1]
            elif n.startswith("--") and a.startswith(n + "="):
                value = a[len(n) + 1:]
    return value


@dataclass
class ServiceView:
    """One service of the compose config as adopt reads it."""

    name: str
    spec: Mapping[str, Any]
    image: str
    argv: list[str]
    env: dict[str, str]
    labels: dict[str, str]         # its llmops.* labels as the config has them
    kind: str                      # LLAMA, EMBEDDER, LITELLM, QDRANT or ""
    why: str                       # what told the kind: "image X" or "command llama-server"

    @property
    def args(self) -> list[str]:
        return _after(self.argv, "llama-server" if self.kind in (LLAMA, EMBEDDER) else self.kind)


def _kind(image: str, argv: list[str], env: dict[str, str]) -> tuple[str, str]:
    img = image.lower()
    names = [PurePosixPath(a).name for a in argv]
    # the image, when it says so, is what a reader recognises; else the program it runs
    llama, why = (True, f"image {image}") if any(p in img for p in _LLAMA_IMAGE) else \
        ("llama-server" in names, "command llama-server")
    if llama:
        args = _after(argv, "llama-server")
        embeds = any(a in ("--embeddings", "--embedding") for a in args) or \
            env.get("LLAMA_ARG_EMBEDDINGS", "").lower() in ("1", "true", "on", "yes")
        return (EMBEDDER, why + ", run with --embeddings") if embeds else (LLAMA, why)
    if "litellm" in img:
        return LITELLM, f"image {image}"
    if "litellm" in names or any(a.startswith("litellm.") for a in argv):
        return LITELLM, "command litellm"
    if "qdrant" in img:
        return QDRANT, f"image {image}"
    return "", ""


def view_service(name: str, spec: Any) -> ServiceView:
    spec = spec if isinstance(spec, Mapping) else {}
    image = str(spec.get("image") or "")
    argv, env = _argv(spec), _env(spec)
    labels = {k: v for k, v in compose_labels(dict(spec)).items() if k.startswith("llmops.")}
    kind, why = _kind(image, argv, env)
    return ServiceView(name, spec, image, argv, env, labels, kind, why)


def port_targets(spec: Mapping[str, Any]) -> list[str]:
    """The container side of each `ports:` entry: v2 long form {target: 7000, ...}, v1.29 short
    "127.0.0.1:7000:7000/tcp" (or "7000", a random host port)."""
    out = []
    for p in spec.get("ports") or []:
        if isinstance(p, Mapping):
            out.append(str(p.get("target", "")))
        else:
            out.append(str(p).split("/")[0].split(":")[-1])
    return out


def mounts(spec: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """(type, source, target) of each volume: v2 long form, v1.29 short `src:dst[:mode]` or long."""
    out = []
    for v in spec.get("volumes") or []:
        if isinstance(v, Mapping):
            out.append((str(v.get("type") or "volume"), str(v.get("source") or ""), str(v.get("target") or "")))
            continue
        parts = str(v).split(":")
        if len(parts) == 1:                    # an anonymous volume: only the container path
            out.append(("volume", "", parts[0]))
            continue
        src, dst = parts[0], parts[1]
        kind = "bind" if src.startswith(("/", ".", "~")) else "volume"
        out.append((kind, src, dst))
    return out


def host_of(container_path: str, spec: Mapping[str, Any], project_dir: Path) -> tuple[Path | None, str]:
    """The host file behind a path in the container, or None and why not.  The deepest mount that
    holds the path is the one the container sees (a file bound inside a mounted directory wins)."""
    best: tuple[int, str, str, str] | None = None         # (depth, type, source, rest of the path)
    for kind, src, dst in mounts(spec):
        dst = dst.rstrip("/") or "/"
        if container_path == dst:
            rest = ""
        elif container_path.startswith(dst.rstrip("/") + "/"):
            rest = container_path[len(dst.rstrip("/")) + 1:]
        else:
            continue
        if best is None or len(dst) > best[0]:
            best = (len(dst), kind, src, rest)
    if best is None:
        return None, "no volume mounts it from this host (is it baked into the image?)"
    _, kind, src, rest = best
    if kind != "bind":
        return None, f"it lives in the {kind} {src or '(anonymous)'}, not in a file on this host"
    host = Path(os.path.expanduser(src))
    host = host if host.is_absolute() else project_dir / host    # compose resolves these; a hand-made config may not
    return (host / rest if rest else host), ""
