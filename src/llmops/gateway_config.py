"""Read the LiteLLM config the gateway really runs, and lint its router settings for slow failover."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from .errors import ConfigError

LITELLM_DEFAULT_TIMEOUT_S = 6000.0   # LiteLLM's own default for a call: effectively "never"
MAX_SANE_TIMEOUT_S = 30.0


CONFIG_IN_CONTAINER = "/etc/litellm/config.yaml"
# Set by `llmops up` to the config file's digest: a changed config then changes the gateway's
# environment, so compose recreates it, and a gateway still running an older one can be told.
CONFIG_DIGEST_ENV = "LLMOPS_GATEWAY_CONFIG_SHA256"


@dataclass
class RouterSummary:
    path: str
    router_settings: dict[str, Any]
    deployments: list[dict[str, Any]]
    warnings: list[str]
    drift: str | None = None        # why the running gateway may not have these settings

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "router_settings": self.router_settings,
                "deployments": self.deployments, "warnings": self.warnings, "drift": self.drift}

    def timeout_s(self, service: str) -> float | None:
        """`service`'s own per-call timeout: what that backend costs a request when it hangs.
        None when the deployment is not found or sets none (LiteLLM's 6000 s default then applies,
        which no failover limit may be loosened to)."""
        d = self.deployment(service)
        return None if d is None or d.get("timeout") is None else float(d["timeout"])

    def deployment(self, service: str) -> dict[str, Any] | None:
        """The deployment that sends to `service`: by its model id, else by its api_base host."""
        for d in self.deployments:
            if d.get("id") == service:
                return d
        for d in self.deployments:
            host = urlsplit(str(d.get("api_base") or "")).hostname
            if host == service:
                return d
        return None

    def stream_timeout_s(self, service: str | None = None) -> float | None:
        """`service`'s stream_timeout (what it costs a stream when it hangs); without one, the
        longest of any deployment; None when none is set (LiteLLM's default then applies)."""
        d = self.deployment(service) if service else None
        if d is not None:
            return None if d.get("stream_timeout") is None else float(d["stream_timeout"])
        vals = [float(d["stream_timeout"]) for d in self.deployments if d.get("stream_timeout") is not None]
        return max(vals) if vals else None


def load_config(path: Path) -> dict[str, Any]:
    from .validate import read_config_text

    text = read_config_text(path, "LiteLLM config")
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise ConfigError(f"LiteLLM config {path}{f' line {mark.line + 1}' if mark else ''}: malformed YAML") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("model_list"), list):
        raise ConfigError(f"LiteLLM config {path}: no model_list")
    # The lint and the failover limits do arithmetic on these: a "2s" must be refused here, as
    # a config error naming the field, not crash later as a ValueError.
    for key in ROUTER_NUMBERS:
        _number(path, f"router_settings.{key}", (doc.get("router_settings") or {}).get(key))
    for i, m in enumerate(doc["model_list"]):
        params = (m or {}).get("litellm_params") or {} if isinstance(m, dict) else {}
        for key in PARAM_NUMBERS:
            _number(path, f"model_list[{i}].litellm_params.{key}", params.get(key))
    return doc


ROUTER_NUMBERS = ("num_retries", "allowed_fails", "cooldown_time", "retry_after")
PARAM_NUMBERS = ("timeout", "stream_timeout", "order", "max_retries")


def _number(path: Path, field: str, value: Any) -> None:
    if value is None:
        return
    try:
        ok = not isinstance(value, bool) and math.isfinite(float(value)) and float(value) >= 0
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ConfigError(f"LiteLLM config {path}: {field} must be a non-negative number, got {value!r}")


def main_alias(doc: dict[str, Any]) -> str | None:
    """The model_name most deployments share: the alias that has a failover (the first on a tie)."""
    names = [m.get("model_name") for m in doc.get("model_list", []) if isinstance(m, dict) and m.get("model_name")]
    return max(names, key=names.count) if names else None


def lint(doc: dict[str, Any], alias: str | None = None) -> list[str]:
    """Warnings for router settings that predict a slow or lossy failover (pure).  `alias` is the
    gateway's `llmops.model-alias` label; without it, the config's main alias."""
    alias = alias or main_alias(doc)
    rs = doc.get("router_settings") or {}
    warnings: list[str] = []
    deps = [m for m in doc.get("model_list", []) if m.get("model_name") == alias]
    if len(deps) < 2:
        warnings.append(f"alias {alias} has {len(deps)} deployment(s): no secondary to fail over to")
    if "allowed_fails" not in rs:
        warnings.append("router_settings.allowed_fails unset: the dead primary keeps getting traffic "
                        "until LiteLLM's default failure budget is spent")
    if "cooldown_time" not in rs:
        warnings.append("router_settings.cooldown_time unset: failback timing is LiteLLM's default")
    if int(rs.get("num_retries", 0) or 0) < 1 and not doc.get("litellm_settings", {}).get("num_retries"):
        warnings.append("num_retries < 1: a request that hits the dead primary fails instead of retrying on the secondary")
    if float(rs.get("retry_after", 0) or 0) > 0:
        warnings.append(f"retry_after={rs['retry_after']}: every retry sleeps first")
    if int(rs.get("num_retries", 0) or 0) > 2:
        warnings.append(f"num_retries={rs['num_retries']}: retries with backoff stretch every failing request")
    for m in deps:
        p = m.get("litellm_params") or {}
        name = (m.get("model_info") or {}).get("id") or p.get("api_base")
        t = p.get("timeout")
        if t is None:
            warnings.append(f"deployment {name}: no timeout, a hung backend holds requests for "
                            f"LiteLLM's default {LITELLM_DEFAULT_TIMEOUT_S:.0f} s")
        elif float(t) > MAX_SANE_TIMEOUT_S:
            warnings.append(f"deployment {name}: timeout {t} s is long for failover")
        if p.get("max_retries") not in (0, "0"):
            warnings.append(f"deployment {name}: max_retries not 0, the OpenAI SDK retries inside one attempt")
        if "order" not in p:
            warnings.append(f"deployment {name}: no `order`, primary/secondary are not defined")
    last = last_standing(deps)
    if last is not None and deployment_cooldown(last) not in (0, 0.0):
        name = (last.get("model_info") or {}).get("id") or (last.get("litellm_params") or {}).get("api_base")
        warnings.append(f"deployment {name} is the last in the failover order but can be cooled down: with the "
                        "others down, one slow reply takes the alias out of service (HTTP 429) for cooldown_time; "
                        "set its model_info.cooldown_time: 0")
    return warnings


def deployment_cooldown(m: dict[str, Any]) -> Any:
    """A deployment's own cooldown_time, where LiteLLM looks for it: model_info first, then
    litellm_params (None: the router's applies)."""
    for where in (m.get("model_info"), m.get("litellm_params")):
        if isinstance(where, dict) and where.get("cooldown_time") is not None:
            return where["cooldown_time"]
    return None


def last_standing(deps: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The deployment tried last (highest `order`): the one left serving when the others are down."""
    ordered = [m for m in deps if (m.get("litellm_params") or {}).get("order") is not None]
    return max(ordered, key=lambda m: float(m["litellm_params"]["order"])) if len(ordered) >= 2 else None


def summarize(path: Path, alias: str | None = None) -> RouterSummary:
    doc = load_config(path)
    alias = alias or main_alias(doc)
    deps = []
    for m in doc.get("model_list", []):
        if m.get("model_name") != alias:
            continue
        p = m.get("litellm_params") or {}
        deps.append({"id": (m.get("model_info") or {}).get("id"), "api_base": p.get("api_base"),
                     "order": p.get("order"), "timeout": p.get("timeout"),
                     "stream_timeout": p.get("stream_timeout"), "max_retries": p.get("max_retries"),
                     "cooldown_time": deployment_cooldown(m)})
    return RouterSummary(str(path), dict(doc.get("router_settings") or {}), deps, lint(doc, alias))


def mounted_config_path(gateway_attrs: dict[str, Any]) -> Path | None:
    """The host file mounted as the gateway's config (LiteLLM read it when it started)."""
    for m in gateway_attrs.get("Mounts", []) or []:
        if m.get("Destination") == CONFIG_IN_CONTAINER:
            return Path(m["Source"])
    return None


def file_digest(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def config_drift(gateway_attrs: dict[str, Any], path: Path) -> str | None:
    """Why the running gateway may hold other settings than `path` says now, or None.

    LiteLLM reads its config once, at start; an editor that writes a new file also leaves the
    container's bind mount on the old one.  Either way the file on disk stops being the truth, and
    every figure judged against its timeouts would be judged against settings that do not run."""
    env = dict(e.split("=", 1) for e in (gateway_attrs.get("Config") or {}).get("Env") or [] if "=" in e)
    started = ((gateway_attrs.get("State") or {}).get("StartedAt") or "")[:26].rstrip("Z")
    digest = env.get(CONFIG_DIGEST_ENV)
    if digest:
        if file_digest(path) != digest:
            return (f"{path.name} changed since the gateway started ({started or 'unknown'} UTC): "
                    "it still runs the old settings; run `llmops up` to reload them")
        return None
    try:
        from datetime import datetime, timezone

        t0 = datetime.fromisoformat(started).replace(tzinfo=timezone.utc).timestamp()
    except ValueError:
        return None
    if path.stat().st_mtime > t0:
        return (f"{path.name} was modified after the gateway started ({started} UTC): it may still run "
                "the old settings; run `llmops up` to reload them")
    return None
