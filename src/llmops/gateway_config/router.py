"""The router settings the gateway runs, as llmops judges and records them: the lint for a slow or
lossy failover, the summary (:class:`RouterSummary`) of the alias' deployments, and whether the
running gateway may still hold older settings than the file (:func:`config_drift`).

What leaves here for a run folder (:meth:`RouterSummary.to_json`) holds only the settings that
shape failover; any other setting is named, not valued, so a redis_password cannot leak.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..backends import HostMap, backend_of
from ..evidence import JsonObject
from ..redact import SET
from .location import CONFIG_DIGEST_ENV, container_env, mounted_config_path
from .schema import Deployment, GatewayConfig, RouterSettings, read_config

LITELLM_DEFAULT_TIMEOUT_S = 6000.0   # LiteLLM's own default for a call: effectively "never"
MAX_SANE_TIMEOUT_S = 30.0


@dataclass
class PublicDeployment:
    """One deployment of the alias as a run folder may hold it (`router.deployments[]`, fields in
    that order): what shapes failover, valued; its other settings named under `other`, never valued."""

    id: str | None                              # model_info.id
    api_base: str | None = None                 # without what may carry a credential
    order: int | float | None = None
    timeout: int | float | None = None
    stream_timeout: int | float | None = None
    max_retries: int | None = None
    cooldown_time: int | float | None = None    # its own, where LiteLLM looks for it
    allowed_fails: int | None = None
    other: dict[str, str] = field(default_factory=dict)   # setting -> SET

    def to_json(self) -> JsonObject:
        return asdict(self)


@dataclass
class RouterSummary:
    path: str
    router_settings: JsonObject         # public_router_settings: the run folder's `router.router_settings`
    deployments: list[PublicDeployment]
    warnings: list[str]
    drift: str | None = None        # why the running gateway may not have these settings
    # DNS name -> compose service of the stack it was read for (never leaves in to_json): how an
    # api_base naming a service by an alias still finds that service's deployment
    hosts: HostMap = field(default_factory=dict, repr=False, compare=False)

    def to_json(self) -> JsonObject:
        return {"path": self.path, "router_settings": self.router_settings,
                "deployments": [d.to_json() for d in self.deployments], "warnings": self.warnings,
                "drift": self.drift}

    def timeout_s(self, service: str) -> float | None:
        """`service`'s own per-call timeout: what that backend costs a request when it hangs.
        None when the deployment is not found or sets none (LiteLLM's 6000 s default then applies,
        which no failover limit may be loosened to)."""
        d = self.deployment(service)
        return None if d is None or d.timeout is None else float(d.timeout)

    def deployment(self, service: str) -> PublicDeployment | None:
        """The deployment that sends to `service`: by its model id, else by its api_base host."""
        for d in self.deployments:
            if d.id == service:
                return d
        for d in self.deployments:
            if backend_of(str(d.api_base or ""), self.hosts) == service:
                return d
        return None

    def stream_timeout_s(self, service: str | None = None) -> float | None:
        """`service`'s stream_timeout (what it costs a stream when it hangs); without one, the
        longest of any deployment; None when none is set (LiteLLM's default then applies)."""
        d = self.deployment(service) if service else None
        if d is not None:
            return None if d.stream_timeout is None else float(d.stream_timeout)
        vals = [float(d.stream_timeout) for d in self.deployments if d.stream_timeout is not None]
        return max(vals) if vals else None


# ---- what may leave for a run folder ----------------------------------------------------------------

# router_settings that shape failover: valued in the manifest and the evidence.  Anything else a
# user sets (redis_password, a cache host, a callback's token) is named with SET, never valued.
ROUTER_ALLOWED = ("num_retries", "allowed_fails", "cooldown_time", "retry_after", "enable_pre_call_checks",
                  "routing_strategy", "timeout", "stream_timeout", "disable_cooldowns", "max_fallbacks",
                  "fallbacks", "default_fallbacks", "context_window_fallbacks", "content_policy_fallbacks",
                  "retry_policy", "allowed_fails_policy")


def _plain(v: Any) -> bool:
    """Numbers, flags and model names, nested in lists/mappings (a fallbacks list, a retry policy)."""
    if v is None or isinstance(v, (bool, int, float)):
        return True
    if isinstance(v, str):
        return len(v) <= 200
    if isinstance(v, list):
        return all(_plain(x) for x in v)
    if isinstance(v, dict):
        return all(isinstance(k, str) and _plain(x) for k, x in v.items())
    return False


def public_router_settings(rs: RouterSettings) -> JsonObject:
    """router_settings as the run folder may hold them: the allow-listed ones valued, the others
    named only, in the order the file has them."""
    # the typed fields in ROUTER_ALLOWED's order, the order the evidence has always listed them in
    # (pydantic's field order puts _Timing's three first), then the others as the file has them
    typed = rs.model_dump(exclude_unset=True)
    rank = {k: i for i, k in enumerate(ROUTER_ALLOWED)}
    values = {**dict(sorted(typed.items(), key=lambda kv: rank.get(kv[0], len(rank)))), **rs.extras()}
    return {k: (v if k in ROUTER_ALLOWED and _plain(v) else SET) for k, v in values.items()}


def public_api_base(url: str | None) -> str | None:
    """api_base without what may carry a credential (user:password@, a ?key= query, a #fragment)."""
    if not url:
        return url
    u = urlsplit(url)
    if not u.hostname:
        return SET
    port = f":{u.port}" if u.port else ""
    return f"{u.scheme}://{u.hostname}{port}{u.path}" if u.scheme else f"{u.hostname}{port}{u.path}"


# ---- the lint and the summary ---------------------------------------------------------------------

def main_alias(doc: GatewayConfig | Mapping[str, Any]) -> str | None:
    """The model_name most deployments share: the alias that has a failover (the first on a tie)."""
    names = [m.model_name for m in GatewayConfig.parse(doc).model_list if m.model_name]
    return max(names, key=names.count) if names else None


def lint(doc: GatewayConfig | Mapping[str, Any], alias: str | None = None) -> list[str]:
    """Warnings for router settings that predict a slow or lossy failover (pure).  `alias` is the
    gateway's `llmops.model-alias` label; without it, the config's main alias."""
    cfg = GatewayConfig.parse(doc)
    alias = alias or main_alias(cfg)
    rs = cfg.router_settings
    warnings: list[str] = []
    deps = [m for m in cfg.model_list if m.model_name == alias]
    if len(deps) < 2:
        warnings.append(f"alias {alias} has {len(deps)} deployment(s): no secondary to fail over to")
    if rs.allowed_fails is None and not rs.is_set("allowed_fails"):
        warnings.append("router_settings.allowed_fails unset: the dead primary keeps getting traffic "
                        "until LiteLLM's default failure budget is spent")
    if rs.cooldown_time is None and not rs.is_set("cooldown_time"):
        warnings.append("router_settings.cooldown_time unset: failback timing is LiteLLM's default")
    if (rs.num_retries or 0) < 1 and not cfg.litellm_settings.num_retries:
        warnings.append("num_retries < 1: a request that hits the dead primary fails instead of retrying on the secondary")
    if (rs.retry_after or 0) > 0:
        warnings.append(f"retry_after={rs.retry_after}: every retry sleeps first")
    if (rs.num_retries or 0) > 2:
        warnings.append(f"num_retries={rs.num_retries}: retries with backoff stretch every failing request")
    for m in deps:
        p = m.litellm_params
        t = p.timeout
        if t is None:
            warnings.append(f"deployment {m.name}: no timeout, a hung backend holds requests for "
                            f"LiteLLM's default {LITELLM_DEFAULT_TIMEOUT_S:.0f} s")
        elif t > MAX_SANE_TIMEOUT_S:
            warnings.append(f"deployment {m.name}: timeout {t} s is long for failover")
        if p.max_retries != 0:
            warnings.append(f"deployment {m.name}: max_retries not 0, the OpenAI SDK retries inside one attempt")
        if p.order is None:
            warnings.append(f"deployment {m.name}: no `order`, primary/secondary are not defined")
    last = last_standing(deps)
    if last is not None and deployment_cooldown(last) != 0:
        warnings.append(f"deployment {last.name} is the last in the failover order but can be cooled down: with the "
                        "others down, one slow reply takes the alias out of service (HTTP 429) for cooldown_time; "
                        "set its model_info.cooldown_time: 0")
    return warnings


def _deployment(m: Deployment | Mapping[str, Any]) -> Deployment:
    return m if isinstance(m, Deployment) else Deployment.model_validate(dict(m))


def deployment_cooldown(m: Deployment | Mapping[str, Any]) -> int | float | None:
    """A deployment's own cooldown_time, where LiteLLM looks for it: model_info first, then
    litellm_params (None: the router's applies)."""
    d = _deployment(m)
    return d.model_info.cooldown_time if d.model_info.cooldown_time is not None else d.litellm_params.cooldown_time


def last_standing(deps: list[Deployment]) -> Deployment | None:
    """The deployment tried last (highest `order`): the one left serving when the others are down."""
    ordered = [m for m in deps if m.litellm_params.order is not None]
    return max(ordered, key=lambda m: float(m.litellm_params.order or 0)) if len(ordered) >= 2 else None


def public_deployment(m: Deployment) -> PublicDeployment:
    """One deployment as the run folder may hold it: what shapes failover, valued; its other
    settings (api_key, rpm, a provider's credentials) named under `other` with SET."""
    p, i = m.litellm_params, m.model_info
    other = {f"litellm_params.{k}": SET for k in p.extras()}
    if p.api_key is not None:
        other["litellm_params.api_key"] = SET
    other.update({f"model_info.{k}": SET for k in i.extras()})
    return PublicDeployment(i.id, public_api_base(p.api_base), p.order, p.timeout, p.stream_timeout, p.max_retries,
                            deployment_cooldown(m), i.allowed_fails, other)


def summarize(path: Path, alias: str | None = None, hosts: HostMap | None = None) -> RouterSummary:
    """The alias' deployments and router settings in the config at `path`, with the lint's
    warnings; `hosts` (a stack's DNS names) lets `deployment()` follow an api_base alias."""
    cfg = read_config(path)
    alias = alias or main_alias(cfg)
    deps = [public_deployment(m) for m in cfg.model_list if m.model_name == alias]
    return RouterSummary(str(path), public_router_settings(cfg.router_settings), deps, lint(cfg, alias),
                         hosts=dict(hosts or {}))



# ---- what the running gateway has --------------------------------------------------------------------

def file_digest(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def config_drift(gateway_attrs: dict[str, Any], path: Path) -> str | None:
    """Why the running gateway may hold other settings than `path` says now, or None.

    LiteLLM reads its config once, at start; an editor that writes a new file also leaves the
    container's bind mount on the old one.  Either way the file on disk stops being the truth, and
    every figure judged against its timeouts would be judged against settings that do not run."""
    env = container_env(gateway_attrs)
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


def running_router(gateway_attrs: dict[str, Any], alias: str | None = None,
                   hosts: HostMap | None = None) -> RouterSummary | None:
    """The router settings the running gateway has mounted (its `docker inspect` attrs), with
    `drift` set when it may still run older ones; None when its config is not on this host.
    `alias` defaults to the config's main alias.  The drift is not put among the warnings: that
    is the caller's choice (the stack leads its warnings with it, the manifest keeps it apart)."""
    p = mounted_config_path(gateway_attrs)
    if not p or not p.exists():
        return None
    r = summarize(p, alias, hosts)
    r.drift = config_drift(gateway_attrs, p)
    return r
