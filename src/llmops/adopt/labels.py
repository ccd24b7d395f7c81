"""The llmops labels adopt writes: the value each role and kind of server gets, and the checks
every value passes first (a label value reaches URLs, paths and argv later)."""

from __future__ import annotations

import re
from pathlib import PurePosixPath

from ..errors import ConfigError
from ..stack import (
    ALIAS_LABEL,
    DIM_LABEL,
    EXPECT_LABEL,
    HEALTH_LABEL,
    MODEL_LABEL,
    PORT_LABEL,
    ROLE_LABEL,
    Role,
    check_labels,
)
from .compose_view import (
    EMBEDDER,
    LITELLM,
    LITELLM_DEFAULT_PORT,
    LLAMA,
    LLAMA_DEFAULT_PORT,
    QDRANT,
    QDRANT_DEFAULT_PORT,
    ServiceView,
    flag_value,
    port_targets,
)

# What each role's health endpoint is and how its body is judged (probes.EXPECTATIONS).
HEALTH = {Role.GATEWAY: "/health/liveliness", Role.PRIMARY: "/health", Role.SECONDARY: "/health",
          Role.RAG: "/health", Role.EMBEDDING: "/health", Role.VECTORDB: "/readyz"}
EXPECT = {Role.GATEWAY: "litellm", Role.PRIMARY: "llama", Role.SECONDARY: "llama", Role.RAG: "rag",
          Role.VECTORDB: "qdrant"}   # embedding: "llama" only when it is a llama-server (see derive_labels)
EXPECT_VALUES = ("llama", "litellm", "qdrant", "rag", "embedding")
LLMOPS_LABELS = (ROLE_LABEL, PORT_LABEL, HEALTH_LABEL, EXPECT_LABEL, ALIAS_LABEL, MODEL_LABEL, DIM_LABEL)

# A model file or model name as a label value: it reaches paths (certify joins it with a mount) and
# JSON bodies; no spaces, quotes, `$` (compose would interpolate it), `;`, newlines, no leading `-`
# (it must never read as an option) and no `..` segment (it must not climb out of a mount).
_NAME = re.compile(r"[A-Za-z0-9_./:@+~][A-Za-z0-9_./:@+~=-]{0,299}")


def check_value(service: str, label: str, value: str) -> None:
    """ConfigError unless `value` is a safe value for `label`: stack.py's validators for the labels
    it reads (role, port, health, dimension), the narrowest working shape for the others."""
    if not isinstance(value, str) or value == "":
        got = type(value).__name__ if not isinstance(value, str) else "nothing"
        raise ConfigError(f"service {service}: label {label} must be a value, got {got}")
    if label in (ROLE_LABEL, PORT_LABEL, HEALTH_LABEL, DIM_LABEL):
        check_labels(service, {label: value})
        if label == PORT_LABEL and value != value.strip():
            raise ConfigError(f"service {service}: label {label}={value!r} is not a TCP port 1-65535")
        return
    if label == EXPECT_LABEL:
        if value not in EXPECT_VALUES:
            raise ConfigError(f"service {service}: label {label}={value!r} is not one of {', '.join(EXPECT_VALUES)}")
        return
    if label in (MODEL_LABEL, ALIAS_LABEL):
        shown = value if len(value) <= 60 else value[:60] + "..."
        if not _NAME.fullmatch(value) or ".." in PurePosixPath(value).parts:
            raise ConfigError(f"service {service}: label {label}={shown!r} is not a plain model name or path "
                              "(letters, digits, . _ / : @ + ~ = -; no spaces, quotes, $, .. or leading -)")
        return
    raise ConfigError(f"service {service}: {label} is not a label llmops writes")


def check_existing(s: ServiceView, problems: list[str]) -> None:
    """A bad llmops label already on a service would fail every llmops command later: say it now."""
    try:
        check_labels(s.name, s.labels)
        for k in (EXPECT_LABEL, MODEL_LABEL, ALIAS_LABEL):
            if k in s.labels and s.labels[k] != "":
                check_value(s.name, k, s.labels[k])
    except ConfigError as e:
        problems.append(f"{e} (in your compose files; fix it there)")


def derive_labels(s: ServiceView, role: str, alias: str | None) -> tuple[list[tuple[str, str, str]], list[str]]:
    """(label, value, where it came from) for a service in a role, and what could not be told."""
    out: list[tuple[str, str, str]] = [(ROLE_LABEL, role, "role")]
    missing: list[str] = []
    args = s.args
    if s.kind in (LLAMA, EMBEDDER):
        port = flag_value(args, "--port") or s.env.get("LLAMA_ARG_PORT")
        out.append((PORT_LABEL, port or str(LLAMA_DEFAULT_PORT), "its --port argument" if port else "llama-server's default"))
    elif s.kind == LITELLM:
        port = flag_value(args, "--port") or s.env.get("PORT")
        out.append((PORT_LABEL, port or str(LITELLM_DEFAULT_PORT), "its --port argument" if port else "litellm's default"))
    elif s.kind == QDRANT:
        port = s.env.get("QDRANT__SERVICE__HTTP_PORT")
        out.append((PORT_LABEL, port or str(QDRANT_DEFAULT_PORT), "QDRANT__SERVICE__HTTP_PORT" if port else "Qdrant's REST port"))
    else:
        targets = port_targets(s.spec)
        if len(targets) == 1:
            out.append((PORT_LABEL, targets[0], "its one ports: entry"))
        else:
            missing.append(f"service {s.name}: cannot tell which container port it listens on "
                           f"({len(targets)} ports: entries{': ' + ', '.join(targets) if targets else ''}); "
                           f"publish exactly one, or give it an {PORT_LABEL} label")
    out.append((HEALTH_LABEL, HEALTH[role], "role"))
    expect = EXPECT.get(role) or ("llama" if s.kind in (LLAMA, EMBEDDER) else None)
    if expect:
        out.append((EXPECT_LABEL, expect, "role"))
    if role == Role.GATEWAY and alias:
        out.append((ALIAS_LABEL, alias, "alias"))
    if s.kind in (LLAMA, EMBEDDER):
        model = flag_value(args, "-m", "--model") or s.env.get("LLAMA_ARG_MODEL")
        if model:
            out.append((MODEL_LABEL, model, "its -m argument"))
        if role == Role.EMBEDDING:
            name = flag_value(args, "-a", "--alias") or s.env.get("LLAMA_ARG_ALIAS")
            if name:
                out.append((ALIAS_LABEL, name, "its --alias argument"))
    return out, missing

