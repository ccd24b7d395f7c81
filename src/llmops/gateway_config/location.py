"""Where the gateway's LiteLLM config is: the path LiteLLM reads inside its container (its argv
or environment) and the host file a bind mount brings there, all from `docker inspect` attrs."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

CONFIG_IN_CONTAINER = "/etc/litellm/config.yaml"
# Set by `llmops up` to the config file's digest: a changed config then changes the gateway's
# environment, so compose recreates it, and a gateway still running an older one can be told.
CONFIG_DIGEST_ENV = "LLMOPS_GATEWAY_CONFIG_SHA256"


def container_env(gateway_attrs: dict[str, Any]) -> dict[str, str]:
    """The container's environment as `docker inspect` gives it (`Config.Env`, `K=V` strings)."""
    return dict(e.split("=", 1) for e in (gateway_attrs.get("Config") or {}).get("Env") or [] if "=" in e)


def config_argument(argv: list[str], env: Mapping[str, str] | None = None) -> str | None:
    """Where LiteLLM reads its config, inside the container: its `--config` argument (also
    `--config=X` and `-c X`), else its CONFIG_FILE_PATH variable, else None."""
    for i, a in enumerate(argv):
        if a in ("--config", "-c") and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith("--config="):
            return a.split("=", 1)[1]
    return (env or {}).get("CONFIG_FILE_PATH") or None


def host_path_of(inside: str, mounts: list[tuple[str, str]]) -> Path | None:
    """The host file behind a container path, through (source, destination) bind mounts (the
    deepest destination wins, as in the container's own view)."""
    best: tuple[int, Path] | None = None
    for source, dest in mounts:
        d = dest.rstrip("/") or "/"
        if inside == d:
            hit = Path(source)
        elif inside.startswith(d.rstrip("/") + "/"):
            hit = Path(source) / inside[len(d.rstrip("/")) + 1:]
        else:
            continue
        if best is None or len(d) > best[0]:
            best = (len(d), hit)
    return best[1] if best else None


def gateway_config_inside(gateway_attrs: dict[str, Any]) -> str:
    """The config path the running gateway was started with (llmops' own default when it names none)."""
    cfg = gateway_attrs.get("Config") or {}
    argv = [*(cfg.get("Entrypoint") or []), *(cfg.get("Cmd") or [])]
    return config_argument([str(a) for a in argv], container_env(gateway_attrs)) or CONFIG_IN_CONTAINER


def mounted_config_path(gateway_attrs: dict[str, Any]) -> Path | None:
    """The host file mounted as the gateway's config (LiteLLM read it when it started): the path
    its `--config` names, mapped through its mounts."""
    mounts = [(str(m.get("Source", "")), str(m.get("Destination", "")))
              for m in gateway_attrs.get("Mounts", []) or [] if m.get("Source")]
    return host_path_of(gateway_config_inside(gateway_attrs), mounts)
