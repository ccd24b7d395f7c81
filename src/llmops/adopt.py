"""`llmops adopt`, the pure part: which service of a compose project llmops did not write plays
which role, and the override file that gives those services llmops' labels.

llmops finds services by their labels (stack.py holds the one label map).  A user's own stack has
none, and editing their compose files is not ours to do; so adopt reads what `docker compose
config` resolved for the project, infers each role from what the services *run* (image, argv,
the LiteLLM config the gateway mounts), and writes llmops' own override file with the labels
only.  Whatever it cannot decide alone (two LiteLLM services, no `order` between the two
deployments, an api_base naming no service...) is a problem line naming the choices and the flag
that settles it: the caller turns problems into exit 2, so a guess never becomes a certificate.

Nothing here runs a program or touches Docker: `propose` takes the parsed `compose config` output
and reads one file (the LiteLLM config, through gateway_config.read_config); `write_override`
writes one.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from .errors import ConfigError
from .gateway_config import Deployment, GatewayConfig, public_api_base, read_config
from .stack import (
    ALIAS_LABEL,
    DIM_LABEL,
    EXPECT_LABEL,
    HEALTH_LABEL,
    MODEL_LABEL,
    PORT_LABEL,
    ROLE_LABEL,
    Role,
    backend_of,
    check_labels,
    compose_labels,
)

# llmops' own override file, written beside the user's compose files (never over one of them).
OVERRIDE_NAME = "llmops.adopt.yml"

# The first line of every file write_override writes: how it knows a file it may replace.
HEADER_FIRST = "# Written by `llmops adopt`: llmops' own compose override, nothing else."
HEADER = (
    HEADER_FIRST + "\n"
    "# It only adds the llmops.* labels through which llmops finds this project's services (it finds\n"
    "# services by label, never by name).  Your compose files are untouched: pass this file as the\n"
    "# last -f after yours (docker compose -f YOUR.yml ... -f llmops.adopt.yml ...).  Labels are part\n"
    "# of a container's configuration, so the next `up` recreates the labelled containers.\n"
    "# Regenerate it with `llmops adopt`; delete it to undo.\n"
)

NOTHING_TO_ADD = "# Nothing to add: every adopted service already carries its llmops labels.\n"

# The container port each server listens on when its argv does not say (their own defaults).
LLAMA_DEFAULT_PORT = 8080      # llama-server --port
LITELLM_DEFAULT_PORT = 4000    # litellm --port (click default; env PORT)
QDRANT_DEFAULT_PORT = 6333     # Qdrant's REST port (env QDRANT__SERVICE__HTTP_PORT)

# What each role's health endpoint is and how its body is judged (probes.EXPECTATIONS).
HEALTH = {Role.GATEWAY: "/health/liveliness", Role.PRIMARY: "/health", Role.SECONDARY: "/health",
          Role.RAG: "/health", Role.EMBEDDING: "/health", Role.VECTORDB: "/readyz"}
EXPECT = {Role.GATEWAY: "litellm", Role.PRIMARY: "llama", Role.SECONDARY: "llama", Role.RAG: "rag",
          Role.VECTORDB: "qdrant"}   # embedding: "llama" only when it is a llama-server (see _derive)
EXPECT_VALUES = ("llama", "litellm", "qdrant", "rag", "embedding")
LLMOPS_LABELS = (ROLE_LABEL, PORT_LABEL, HEALTH_LABEL, EXPECT_LABEL, ALIAS_LABEL, MODEL_LABEL, DIM_LABEL)

# Kinds of server, told from the image and the argv.
LLAMA, EMBEDDER, LITELLM, QDRANT = "llama-server", "llama-server --embeddings", "litellm", "qdrant"
_LLAMA_IMAGE = ("llama.cpp", "llama-cpp", "llama_cpp", "llama-server", "llmops/llama-")
_SHELLS = ("sh", "bash", "ash", "dash")

# Compose's own rule for service names: the override's keys must be what compose accepts anyway.
_SERVICE_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9._-]{0,200}")
# A model file or model name as a label value: it reaches paths (certify joins it with a mount) and
# JSON bodies; no spaces, quotes, `$` (compose would interpolate it), `;`, newlines, no leading `-`
# (it must never read as an option) and no `..` segment (it must not climb out of a mount).
_NAME = re.compile(r"[A-Za-z0-9_./:@+~][A-Za-z0-9_./:@+~=-]{0,299}")


# ---- the result ---------------------------------------------------------------------------------

@dataclass
class Proposal:
    """One service's part: its role, the labels the override adds (`labels`), the llmops labels
    it already has and keeps (`kept`), and one line saying why."""

    service: str
    role: str                      # "" for a service whose stale llmops.role the override clears
    labels: dict[str, str]
    evidence: str
    kept: dict[str, str] = field(default_factory=dict)

    @property
    def final(self) -> dict[str, str]:
        """The llmops labels the service carries once the override is applied."""
        return {**self.kept, **self.labels}


@dataclass
class Adoption:
    proposals: list[Proposal]
    unassigned: list[str]          # services left without a role (sidecars, a database...)
    gateway_config: Path | None    # the LiteLLM config read, on this host
    alias: str | None
    problems: list[str]            # each one line naming the choices and the flag that settles it
    notes: list[str] = field(default_factory=list)   # worth saying, settles nothing, blocks nothing

    @property
    def ok(self) -> bool:
        return not self.problems

    def rows(self) -> list[tuple[str, str, str, str]]:
        """(service, role, labels, evidence) for a table: added labels as k=v, kept ones marked."""
        out = []
        for p in self.proposals:
            shown = [f"{k}={v}" for k, v in p.labels.items()] + [f"{k}={v} (kept)" for k, v in p.kept.items()]
            out.append((p.service, p.role or "(none)", ", ".join(shown), p.evidence))
        return out

    def labels_by_service(self) -> dict[str, dict[str, str]]:
        """service -> its llmops labels once the override is applied (kept and added)."""
        return {p.service: p.final for p in self.proposals}

    def check(self) -> None:
        """ConfigError (exit 2) naming the first problem, when there are any: one line, as every
        llmops error is (the caller lists them all first)."""
        if self.problems:
            more = f" (and {len(self.problems) - 1} more)" if len(self.problems) > 1 else ""
            raise ConfigError(f"{self.problems[0]}{more}")


# ---- reading one service of `compose config` -----------------------------------------------------

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


def _flag(args: list[str], *names: str) -> str | None:
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
class _Svc:
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


def _view(name: str, spec: Any) -> _Svc:
    spec = spec if isinstance(spec, Mapping) else {}
    image = str(spec.get("image") or "")
    argv, env = _argv(spec), _env(spec)
    labels = {k: v for k, v in compose_labels(dict(spec)).items() if k.startswith("llmops.")}
    kind, why = _kind(image, argv, env)
    return _Svc(name, spec, image, argv, env, labels, kind, why)


def _port_targets(spec: Mapping[str, Any]) -> list[str]:
    """The container side of each `ports:` entry: v2 long form {target: 7000, ...}, v1.29 short
    "127.0.0.1:7000:7000/tcp" (or "7000", a random host port)."""
    out = []
    for p in spec.get("ports") or []:
        if isinstance(p, Mapping):
            out.append(str(p.get("target", "")))
        else:
            out.append(str(p).split("/")[0].split(":")[-1])
    return out


def _mounts(spec: Mapping[str, Any]) -> list[tuple[str, str, str]]:
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


# ---- the LiteLLM config the gateway runs ---------------------------------------------------------

def _host_of(container_path: str, spec: Mapping[str, Any], project_dir: Path) -> tuple[Path | None, str]:
    """The host file behind a path in the container, or None and why not.  The deepest mount that
    holds the path is the one the container sees (a file bound inside a mounted directory wins)."""
    best: tuple[int, str, str, str] | None = None         # (depth, type, source, rest of the path)
    for kind, src, dst in _mounts(spec):
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


def _gateway_config(gw: _Svc | None, project_dir: Path, override: Path | None,
                    problems: list[str]) -> tuple[Path | None, str, str]:
    """(host path, how it was found, how lines name it) of the gateway's LiteLLM config: lines
    name it by its path in the container, the one the gateway's argv and mounts speak of."""
    if override is not None:
        return Path(override), f"--gateway-config {override}", str(override)
    if gw is None:
        return None, "", "the LiteLLM config"
    inside = _flag(gw.args, "--config", "-c")
    if inside is None:
        # litellm without --config reads no file; a single mounted YAML is still what the
        # user meant it to run (an entrypoint script may pass it), so take that, and say so.
        yamls = [(dst, src) for kind, src, dst in _mounts(gw.spec) if dst.endswith((".yaml", ".yml"))]
        if len(yamls) != 1:
            shown = ", ".join(d for d, _ in yamls) or "none"
            problems.append(f"gateway {gw.name}: no --config argument, and {len(yamls)} YAML files are "
                            f"mounted ({shown}): say which is its LiteLLM config with --gateway-config PATH")
            return None, "", "the LiteLLM config"
        inside = yamls[0][0]
        how = f"no --config; the one YAML mounted, {inside}"
    else:
        how = f"--config {inside}"
    if not inside.startswith("/"):
        wd = str(gw.spec.get("working_dir") or "")
        if not wd.startswith("/"):
            problems.append(f"gateway {gw.name}: --config {inside} is relative to the image's working "
                            "directory, which the compose config does not give: pass --gateway-config PATH")
            return None, "", inside
        inside = str(PurePosixPath(wd) / inside)
    host, why = _host_of(inside, gw.spec, project_dir)
    if host is None:
        problems.append(f"gateway {gw.name}: its LiteLLM config {inside}: {why}; pass --gateway-config PATH")
        return None, "", inside
    return host, f"{how} = {host} on this host", inside


# ---- deployments -> services -------------------------------------------------------------------------

def _hosts(svcs: dict[str, _Svc], gw: _Svc | None) -> dict[str, dict[str, str]]:
    """DNS name -> {service: how the name reaches it}: what an api_base host can name."""
    out: dict[str, dict[str, str]] = {}

    def add(host: Any, svc: str, how: str) -> None:
        if host:
            out.setdefault(str(host), {}).setdefault(svc, how)

    for s in svcs.values():
        add(s.name, s.name, "service name")
        add(s.spec.get("hostname"), s.name, f"hostname of {s.name}")
        add(s.spec.get("container_name"), s.name, f"container_name of {s.name}")
        nets = s.spec.get("networks") or {}
        for net in (nets.values() if isinstance(nets, Mapping) else []):   # a list form has no aliases
            for a in (net.get("aliases") or []) if isinstance(net, Mapping) else []:
                add(a, s.name, f"network alias of {s.name}")
    # links resolve only inside the service that declares them: the gateway's are the ones that count
    for link in ((gw.spec.get("links") or []) if gw else []):
        target, _, name = str(link).partition(":")
        if target in svcs:
            add(name or target, target, f"link from {gw.name if gw else '?'} to {target}")
    return out


@dataclass
class _Route:
    dep: Deployment
    service: str
    how: str                       # "service name", "network alias of llm-main", "model_info.id"

    @property
    def order(self) -> float | None:
        o = self.dep.litellm_params.order
        return None if o is None else float(o)

    @property
    def label(self) -> str:
        """How a problem line names the deployment."""
        return f"{_dep_name(self.dep)} (-> {self.service})"


def _dep_name(d: Deployment) -> str:
    """How lines name a deployment: its model id, else where it sends, without what may carry a
    credential (user:password@, ?key=): Deployment.name would show the api_base as written."""
    return d.model_info.id or public_api_base(d.litellm_params.api_base) or "(no model_info.id, no api_base)"


def _num(x: float | None) -> str:
    return "?" if x is None else (str(int(x)) if float(x).is_integer() else str(x))


def _routes(deps: list[Deployment], svcs: dict[str, _Svc], gw: _Svc | None, where: str,
            claims: dict[str, _Claim], problems: list[str]) -> list[_Route]:
    hosts = _hosts(svcs, gw)
    out = []
    for d in deps:
        api = d.litellm_params.api_base
        host = backend_of(api)
        by_host = hosts.get(host or "", {})
        if len(by_host) > 1:    # one name, several services: a model role given to one of them decides
            mine = {s: h for s, h in by_host.items() if s in claims and claims[s].role in Role.MODEL_SERVERS}
            by_host = mine if len(mine) == 1 else by_host
        by_id = d.model_info.id if d.model_info.id in svcs else None
        if len(by_host) > 1:
            problems.append(f"deployment {_dep_name(d)} in {where}: api_base host {host} names several services "
                            f"({', '.join(f'{s}: {h}' for s, h in sorted(by_host.items()))}): say which with "
                            f"--role SERVICE={Role.PRIMARY} / {Role.SECONDARY}")
            continue
        if by_host:
            svc, how = next(iter(by_host.items()))
            if by_id and by_id != svc:
                problems.append(f"deployment {_dep_name(d)} in {where}: its api_base {public_api_base(api)} reaches {svc} "
                                f"({how}) but its model_info.id names service {by_id}: make them agree")
                continue
            out.append(_Route(d, svc, how))
        elif by_id:
            out.append(_Route(d, by_id, "model_info.id"))
        else:
            problems.append(f"deployment {_dep_name(d)} in {where}: api_base {public_api_base(api)} names no service "
                            f"of this project (host {host or 'none'}; services, hostnames, container names, "
                            f"network aliases and links: {', '.join(sorted(hosts))})")
    return out


# ---- label values --------------------------------------------------------------------------------

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


def _check_existing(s: _Svc, problems: list[str]) -> None:
    """A bad llmops label already on a service would fail every llmops command later: say it now."""
    try:
        check_labels(s.name, s.labels)
        for k in (EXPECT_LABEL, MODEL_LABEL, ALIAS_LABEL):
            if k in s.labels and s.labels[k] != "":
                check_value(s.name, k, s.labels[k])
    except ConfigError as e:
        problems.append(f"{e} (in your compose files; fix it there)")


def _derive(s: _Svc, role: str, alias: str | None) -> tuple[list[tuple[str, str, str]], list[str]]:
    """(label, value, where it came from) for a service in a role, and what could not be told."""
    out: list[tuple[str, str, str]] = [(ROLE_LABEL, role, "role")]
    missing: list[str] = []
    args = s.args
    if s.kind in (LLAMA, EMBEDDER):
        port = _flag(args, "--port") or s.env.get("LLAMA_ARG_PORT")
        out.append((PORT_LABEL, port or str(LLAMA_DEFAULT_PORT), "its --port argument" if port else "llama-server's default"))
    elif s.kind == LITELLM:
        port = _flag(args, "--port") or s.env.get("PORT")
        out.append((PORT_LABEL, port or str(LITELLM_DEFAULT_PORT), "its --port argument" if port else "litellm's default"))
    elif s.kind == QDRANT:
        port = s.env.get("QDRANT__SERVICE__HTTP_PORT")
        out.append((PORT_LABEL, port or str(QDRANT_DEFAULT_PORT), "QDRANT__SERVICE__HTTP_PORT" if port else "Qdrant's REST port"))
    else:
        targets = _port_targets(s.spec)
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
        model = _flag(args, "-m", "--model") or s.env.get("LLAMA_ARG_MODEL")
        if model:
            out.append((MODEL_LABEL, model, "its -m argument"))
        if role == Role.EMBEDDING:
            name = _flag(args, "-a", "--alias") or s.env.get("LLAMA_ARG_ALIAS")
            if name:
                out.append((ALIAS_LABEL, name, "its --alias argument"))
    return out, missing


# ---- propose ---------------------------------------------------------------------------------------

@dataclass
class _Claim:
    role: str
    source: str                    # "explicit" (--role), "label" (already labelled), "inferred",
                                   # "contract" (a running service answered as the role does)
    why: str


def contract_role(health_body: Any, embeddings_body: Any) -> str | None:
    """The role a running service's answers prove it plays under llmops' contract: rag when its
    /health reports `qdrant` and `embedding` as booleans (as llmops.services.rag does), embedding
    when its POST /v1/embeddings answers OpenAI's shape with a non-empty vector; else None."""
    if isinstance(health_body, Mapping) and all(isinstance(health_body.get(k), bool) for k in ("qdrant", "embedding")):
        return Role.RAG
    data = embeddings_body.get("data") if isinstance(embeddings_body, Mapping) else None
    if isinstance(data, list) and data and isinstance(data[0], Mapping):
        vec = data[0].get("embedding")
        if isinstance(vec, list) and vec and all(isinstance(x, (int, float)) for x in vec[:8]):
            return Role.EMBEDDING
    return None


def propose(config: dict[str, Any], *, project_dir: Path, roles: dict[str, str] | None = None,
            alias: str | None = None, gateway_config: Path | None = None,
            contracts: Mapping[str, tuple[str, str]] | None = None) -> Adoption:
    """What each service of the resolved compose `config` is for, and the labels that say so.

    `roles` (--role SERVICE=ROLE) decide over everything inferred and over labels already there;
    `contracts` (service -> (role, evidence)) are the running services whose answers proved them a
    rag or an embedding server (`contract_role`): taken when nothing else holds that role;
    `alias` (--alias) picks the LiteLLM model_name; `gateway_config` (--gateway-config) is the
    LiteLLM config file when the gateway's own mount does not tell it."""
    problems: list[str] = []
    notes: list[str] = []
    raw = config.get("services") if isinstance(config, Mapping) else None
    if not isinstance(raw, Mapping) or not raw:
        return Adoption([], [], None, None, ["the compose config has no services"])
    svcs = {str(n): _view(str(n), spec) for n, spec in sorted(raw.items())}
    names = ", ".join(svcs)
    for s in svcs.values():
        _check_existing(s, problems)

    # 1. --role: an unknown service or role is named with the valid ones
    claims: dict[str, _Claim] = {}
    for svc, role in (roles or {}).items():
        if svc not in svcs:
            problems.append(f"--role {svc}={role}: no service {svc} in this project; services: {names}")
        elif role not in Role.ALL:
            problems.append(f"--role {svc}={role}: unknown role {role}; valid roles: {', '.join(Role.ALL)}")
        else:
            claims[svc] = _Claim(role, "explicit", f"--role {svc}={role}")
    for role in Role.ALL:
        twice = [n for n, c in claims.items() if c.role == role]
        if len(twice) > 1:
            problems.append(f"--role gives {role} to {', '.join(twice)}: one service per role")
            for n in twice:
                del claims[n]

    # 2. labels already there count, unless an explicit --role decided otherwise
    cleared: dict[str, str] = {}       # service -> the --role that takes its labelled role away
    contested: set[str] = set()        # roles that two services' labels claim: settled by --role only
    explicit_by_role = {c.role: s for s, c in claims.items()}
    for role in Role.ALL:
        have = [s.name for s in svcs.values() if s.name not in claims and s.labels.get(ROLE_LABEL) == role]
        if role in explicit_by_role:
            for n in have:
                cleared[n] = f"--role {explicit_by_role[role]}={role}"
        elif len(have) > 1:
            problems.append(f"services {', '.join(have)} all carry {ROLE_LABEL}={role}: say which with --role SERVICE={role}")
            contested.add(role)
        elif have:
            claims[have[0]] = _Claim(role, "label", f"label {ROLE_LABEL}={role} already set")

    def holder(role: str) -> str | None:
        return next((s for s, c in claims.items() if c.role == role), None)

    def free(kind: str) -> list[str]:
        return [s.name for s in svcs.values() if s.kind == kind and s.name not in claims]

    # 3. the gateway: the one LiteLLM service
    if holder(Role.GATEWAY) is None and Role.GATEWAY not in contested:
        cands = free(LITELLM)
        if len(cands) == 1:
            claims[cands[0]] = _Claim(Role.GATEWAY, "inferred", svcs[cands[0]].why)
        elif cands:
            problems.append(f"{len(cands)} LiteLLM services ({', '.join(cands)}): say which is the gateway "
                            f"with --role SERVICE={Role.GATEWAY}")
        else:
            problems.append(f"no LiteLLM gateway: no service's image or command is litellm ({names}): "
                            f"name it with --role SERVICE={Role.GATEWAY}")
    gw_name = holder(Role.GATEWAY)
    gw = svcs[gw_name] if gw_name else None

    # 4. its LiteLLM config, the alias, the alias' deployments
    cfg_path, cfg_how, where = _gateway_config(gw, project_dir, gateway_config, problems)
    cfg: GatewayConfig | None = None
    if cfg_path is not None:
        try:
            cfg = read_config(cfg_path)
        except ConfigError as e:
            problems.append(f"{e}; pass --gateway-config PATH if it is not the gateway's config")
    alias_name, alias_how = _alias(cfg, where, alias, gw, problems)
    deps = [m for m in cfg.model_list if m.model_name == alias_name] if cfg and alias_name else []
    routes = _routes(deps, svcs, gw, where, claims, problems)
    if cfg and alias_name and len(deps) < 2:
        problems.append(f"alias {alias_name} has {len(deps)} deployment(s) in {where}: llmops certifies a failover "
                        "between two; choose another with --alias NAME")

    # 5. primary and secondary, by the deployments' order
    route_of = {r.service: r for r in routes}
    _model_roles(claims, routes, route_of, svcs, alias_name, where, contested, problems, notes)

    # 6. the vector database: the one Qdrant
    if holder(Role.VECTORDB) is None and Role.VECTORDB not in contested:
        cands = free(QDRANT)
        if len(cands) == 1:
            claims[cands[0]] = _Claim(Role.VECTORDB, "inferred", svcs[cands[0]].why)
        elif cands:
            problems.append(f"{len(cands)} Qdrant services ({', '.join(cands)}): say which is the vector database "
                            f"with --role SERVICE={Role.VECTORDB}")

    # rag and embedding are never guessed from images: only named, or proven by what they answer
    for svc, (role, why) in sorted((contracts or {}).items()):
        if svc in svcs and svc not in claims and role in (Role.RAG, Role.EMBEDDING) and holder(role) is None \
                and role not in contested:
            claims[svc] = _Claim(role, "contract", why)
    for s in svcs.values():
        if s.name in claims:
            continue
        if s.kind == EMBEDDER and holder(Role.EMBEDDING) is None:
            notes.append(f"{s.name} runs llama-server --embeddings: to certify it as the embedding server, "
                         f"add --role {s.name}={Role.EMBEDDING}")
        elif s.kind == LLAMA and alias_name and s.name not in route_of:
            notes.append(f"{s.name} runs llama-server but no deployment of alias {alias_name} sends to it: left unlabelled")

    # 7. the labels
    proposals = []
    order = {r: i for i, r in enumerate(Role.ALL)}
    for svc, claim in sorted(claims.items(), key=lambda kv: (order[kv[1].role], kv[0])):
        s = svcs[svc]
        evidence = _evidence(s, claim, route_of.get(svc), where, cfg_how, alias_name, alias_how, len(deps))
        proposals.append(_proposal(s, claim, alias_name, alias is not None, cleared.get(svc), evidence,
                                   problems, notes))
    for svc, flag in sorted(cleared.items()):
        if svc not in claims:
            old = svcs[svc].labels[ROLE_LABEL]
            proposals.append(Proposal(svc, "", {ROLE_LABEL: ""},
                                      f"its label {ROLE_LABEL}={old} is cleared: {flag} names another service",
                                      {k: v for k, v in svcs[svc].labels.items() if k != ROLE_LABEL}))
    done = {p.service for p in proposals}
    unassigned = [n for n in svcs if n not in done]
    # the invariant the Stack relies on (it takes the *first* service with a role): one per role,
    # counted on the labels as they will be, the untouched services' included
    final = {p.service: p.final.get(ROLE_LABEL, "") for p in proposals}
    final.update({n: svcs[n].labels.get(ROLE_LABEL, "") for n in unassigned})
    for role in Role.ALL:
        holders = sorted(n for n, r in final.items() if r == role)
        if len(holders) > 1 and role not in contested:
            problems.append(f"{', '.join(holders)} would all carry {ROLE_LABEL}={role}: say which with --role SERVICE={role}")
    # one line once: two paths to the same doubt say it once
    return Adoption(proposals, unassigned, cfg_path, alias_name, list(dict.fromkeys(problems)),
                    list(dict.fromkeys(notes)))


def _alias(cfg: GatewayConfig | None, where: str, alias: str | None, gw: _Svc | None,
           problems: list[str]) -> tuple[str | None, str]:
    if cfg is None:
        return alias or (gw.labels.get(ALIAS_LABEL) if gw else None), ""
    counts: dict[str, int] = {}
    for m in cfg.model_list:
        if m.model_name:
            counts[m.model_name] = counts.get(m.model_name, 0) + 1
    listed = ", ".join(f"{n} ({c})" for n, c in counts.items()) or "none"
    if alias is not None:
        if alias not in counts:
            problems.append(f"--alias {alias}: no model_name {alias} in {where}; model names (deployments): {listed}")
            return None, ""
        return alias, f"--alias {alias}"
    labelled = gw.labels.get(ALIAS_LABEL) if gw else None
    if labelled:
        if labelled not in counts:
            problems.append(f"gateway {gw.name if gw else '?'}: its label {ALIAS_LABEL}={labelled} names no model_name "
                            f"in {where} ({listed}): choose with --alias NAME")
            return None, ""
        return labelled, f"label {ALIAS_LABEL}={labelled}"
    multi = [n for n, c in counts.items() if c >= 2]
    if len(multi) == 1:
        return multi[0], ""
    if multi:
        problems.append(f"{len(multi)} model names in {where} have 2+ deployments ({', '.join(multi)}): "
                        "say which alias to certify with --alias NAME")
    else:
        problems.append(f"no model_name in {where} has 2+ deployments ({listed}): llmops certifies a failover "
                        "between two; choose with --alias NAME")
    return None, ""


def _model_roles(claims: dict[str, _Claim], routes: list[_Route], route_of: dict[str, _Route],
                 svcs: dict[str, _Svc], alias: str | None, where: str, contested: set[str],
                 problems: list[str], notes: list[str]) -> None:
    """Primary and secondary among the alias' deployments: the lower `order` first (LiteLLM's rule
    with enable_pre_call_checks).  A --role or a label already there holds its service; the other
    role goes to the best-ordered deployment left, or, with no order, to the one deployment left."""
    if len(routes) < 2:
        return
    for r in routes:
        c = claims.get(r.service)
        if c is not None and c.role not in Role.MODEL_SERVERS:
            problems.append(f"deployment {_dep_name(r.dep)} in {where} sends to {r.service}, which is {c.role} "
                            f"({c.why}): settle it with --role {r.service}={Role.PRIMARY} or {Role.SECONDARY}")
    fixed = {c.role: s for s, c in claims.items() if c.role in Role.MODEL_SERVERS}
    for role, svc in fixed.items():
        if svc not in route_of:
            problems.append(f"{svc} is {role} ({claims[svc].why}) but no deployment of alias {alias} in {where} "
                            f"sends to it (they send to {', '.join(r.service for r in routes)})")
    open_roles = [r for r in Role.MODEL_SERVERS if r not in fixed and r not in contested]
    srt = sorted(routes, key=lambda r: float(r.order or 0)) if all(r.order is not None for r in routes) else []
    if srt and srt[0].order != srt[1].order:
        for role, i in ((Role.PRIMARY, 0), (Role.SECONDARY, 1)):
            held = fixed.get(role)
            if held is not None and held in route_of and srt[i].service != held:
                if claims[held].source == "label":
                    problems.append(f"{held} is labelled {role} but the order in {where} makes {srt[i].service} "
                                    f"{role}: settle it with --role SERVICE={role}")
                else:
                    notes.append(f"{claims[held].why} goes against the order in {where}, which makes "
                                 f"{srt[i].service} {role}")
        pool = [r for r in srt if r.service not in claims]
        for role in open_roles:
            if pool:
                _claim_model(claims, svcs, pool.pop(0), role, "", problems)
        for r in pool:
            notes.append(f"deployment {_dep_name(r.dep)} (order {_num(r.order)}, -> {r.service}) is one more deployment "
                         f"of {alias}: llmops certifies the first two, it is left unlabelled")
        return
    if not open_roles:
        return
    pool = [r for r in routes if r.service not in claims]
    if len(open_roles) == 1 and len(pool) == 1:
        _claim_model(claims, svcs, pool[0], open_roles[0], f"the other deployment of alias {alias}", problems)
        return
    if srt:
        undecided = f"have the same order {_num(srt[0].order)}"
    elif all(r.order is None for r in routes):
        undecided = "have no litellm_params.order"
    else:
        undecided = "do not all have a litellm_params.order (" + \
            ", ".join(f"{_dep_name(r.dep)}: {_num(r.order)}" for r in routes) + ")"
    shown = " and ".join(r.label for r in routes)
    problems.append(f"alias {alias}: deployments {shown} {undecided} in {where}, so which is primary is not "
                    f"defined: say which with --role {routes[0].service}={Role.PRIMARY} "
                    "(or set order: 1 and 2 in the LiteLLM config)")


def _claim_model(claims: dict[str, _Claim], svcs: dict[str, _Svc], route: _Route, role: str, why: str,
                 problems: list[str]) -> None:
    """Give an inferred model role to a deployment's service, if it is a llama-server."""
    s = svcs[route.service]
    if s.kind != LLAMA:
        what = "runs llama-server --embeddings: an embedding server, not an inference one" if s.kind == EMBEDDER \
            else f"is not a llama.cpp server (image {s.image or 'none'}, command {' '.join(s.argv) or 'none'})"
        problems.append(f"deployment {_dep_name(route.dep)} sends to {s.name}, which {what}: llmops certifies "
                        f"llama-server backends; if it is one, say so with --role {s.name}={role}")
        return
    claims[s.name] = _Claim(role, "inferred", "; ".join(p for p in (s.why, why) if p))


def _evidence(s: _Svc, claim: _Claim, route: _Route | None, where: str, cfg_how: str,
              alias: str | None, alias_how: str, n_deps: int) -> str:
    """One line: what made the role (the flag, the label, or what the service runs), then the facts
    behind it (the deployment that sends to it, the config and alias the gateway serves)."""
    parts = [claim.why]
    if claim.source != "inferred" and s.why:
        parts.append(s.why)
    if route is not None and claim.role in Role.MODEL_SERVERS:
        via = "" if route.how in ("service name", "model_info.id") else f" ({route.how})"
        api = public_api_base(route.dep.litellm_params.api_base)
        dep = f"deployment order {_num(route.order)}" if route.order is not None else \
            f"deployment {_dep_name(route.dep)} (no order)"
        parts.append(f"model_info.id {route.dep.model_info.id} of {dep} in {where}" if route.how == "model_info.id"
                     else f"api_base {api}{via} of {dep} in {where}")
    if claim.role == Role.GATEWAY:
        parts.append(cfg_how)
        if alias:
            parts.append(f"alias {alias}{f' ({alias_how})' if alias_how else ''} has {n_deps} deployments")
    return "; ".join(p for p in parts if p)


def _proposal(s: _Svc, claim: _Claim, alias: str | None, alias_explicit: bool, cleared: str | None,
              evidence: str, problems: list[str], notes: list[str]) -> Proposal:
    derived, missing = _derive(s, claim.role, alias)
    kept = dict(s.labels)
    added: dict[str, str] = {}
    replaced = []
    for label, value, origin in derived:
        try:
            check_value(s.name, label, value)
        except ConfigError as e:
            if label not in kept:       # a bad value is never proposed; one already there stands
                problems.append(f"{e} (from {origin}): not written")
            continue
        old = kept.get(label)
        if old is None:
            added[label] = value
        elif old != value:
            # what an explicit flag said wins over a label already there; anything else is theirs
            # (a role label that an explicit --role for another service cleared is replaced too)
            explicit = claim.source == "explicit" and label in (ROLE_LABEL, EXPECT_LABEL) or \
                alias_explicit and label == ALIAS_LABEL and claim.role == Role.GATEWAY or \
                cleared is not None and label == ROLE_LABEL
            if explicit:
                added[label] = value
                del kept[label]
                why = f" ({cleared} names another service)" if cleared and label == ROLE_LABEL else ""
                replaced.append(f"replaces {label}={old}{why}")
            else:
                notes.append(f"{s.name}: keeps its {label}={old} (adopt would write {value}, from {origin})")
    for m in missing:
        if PORT_LABEL not in kept:
            problems.append(m)
    if replaced:
        evidence = f"{evidence}; {', '.join(replaced)}"
    port_from = next((o for k, _, o in derived if k == PORT_LABEL), "")
    if PORT_LABEL in added and port_from.startswith("its one ports:"):
        evidence = f"{evidence}; container port {added[PORT_LABEL]} from {port_from}"
    port = added.get(PORT_LABEL) or kept.get(PORT_LABEL)
    if port and port not in _port_targets(s.spec):
        # probes reach a service through its published port on 127.0.0.1, never the container's IP
        notes.append(f"{s.name}: container port {port} is not published (ports:): llmops cannot probe it "
                     "until it is")
    if claim.role == Role.EMBEDDING and DIM_LABEL not in kept:
        notes.append(f"{s.name}: no {DIM_LABEL} label (adopt cannot know the model's dimension): "
                     "its vectors are checked against the n_embd its model reports")
    return Proposal(s.name, claim.role, added, evidence, kept)


# ---- the override file -------------------------------------------------------------------------------

def override_yaml(adoption: Adoption) -> str:
    """The override file's text: `services: {svc: {labels: {...}}}` and nothing else, every value
    checked first and written by yaml.safe_dump, so no label value can become YAML of its own."""
    if adoption.problems:
        raise ConfigError(f"not writing {OVERRIDE_NAME}: {len(adoption.problems)} problem(s) to settle first: "
                          f"{adoption.problems[0]}")
    services: dict[str, dict[str, dict[str, str]]] = {}
    for p in adoption.proposals:
        if not p.labels:
            continue
        if not isinstance(p.service, str) or not _SERVICE_NAME.fullmatch(p.service):
            raise ConfigError(f"service name {p.service!r} is not one compose accepts")
        for label, value in p.labels.items():
            if label not in LLMOPS_LABELS:
                raise ConfigError(f"service {p.service}: {label} is not a label llmops writes")
            if label == ROLE_LABEL and value == "":
                continue                # clearing a stale role label: llmops reads "" as no role
            check_value(p.service, label, value)
        # the whole set as llmops will read it, through the same checks the stack applies
        check_labels(p.service, p.final)
        services[p.service] = {"labels": dict(p.labels)}
    # docker-compose 1.29 reads a file with no `version:` and nothing in services/networks/volumes as
    # a legacy v1 file and refuses to merge it ("Version mismatch"); with services it needs none, and
    # compose v2 warns about a `version:` it ignores.  So: a version only when there is nothing to add.
    doc: dict[str, Any] = {"services": services} if services else {"version": "3.9", "services": {}}
    body = yaml.safe_dump(doc, sort_keys=False, default_flow_style=False, allow_unicode=False, width=1000)
    if yaml.safe_load(body) != doc:         # belt and braces: what compose reads is what was checked
        raise ConfigError(f"{OVERRIDE_NAME} would not read back as written")
    return HEADER + ("" if services else NOTHING_TO_ADD) + body


def is_ours(path: Path) -> bool:
    """Whether `path` is a file llmops adopt wrote (so it may be replaced)."""
    try:
        with open(path, encoding="utf-8") as f:
            return f.readline().rstrip("\n") == HEADER_FIRST
    except (OSError, UnicodeDecodeError):
        return False


def write_override(adoption: Adoption, path: Path) -> Path:
    """Write the override at `path` (a directory: OVERRIDE_NAME in it) and return where.  A file
    there that llmops did not write is never replaced: it may be one of the user's own."""
    target = Path(path) / OVERRIDE_NAME if Path(path).is_dir() else Path(path)
    text = override_yaml(adoption)
    if target.exists() and not is_ours(target):
        raise ConfigError(f"{target} exists and llmops did not write it: not replacing it "
                          f"(move it, or choose another path)")
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, target)          # a reader sees the old file or the new one, never half
    finally:
        if tmp.exists():
            tmp.unlink()
    return target
