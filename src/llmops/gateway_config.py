"""Read the LiteLLM config the gateway really runs, and lint its router settings for slow failover.

One typed reader (:func:`read_config`) parses the file into the pydantic models below: exactly the
fields llmops reads, each type-checked, every other key kept as the user wrote it (LiteLLM has many
we never look at).  A shape llmops cannot use is a :class:`ConfigError` (exit 2) naming the file,
the field path and what was expected, never an AttributeError later in the lint or the manifest.
What leaves this module for a run folder (:meth:`RouterSummary.to_json`) holds only the settings
that shape failover; any other setting is named, not valued, so a redis_password cannot leak.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Union
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainValidator, ValidationError
from pydantic_core import PydanticCustomError

from .errors import ConfigError
from .redact import SET, scrub

LITELLM_DEFAULT_TIMEOUT_S = 6000.0   # LiteLLM's own default for a call: effectively "never"
MAX_SANE_TIMEOUT_S = 30.0


CONFIG_IN_CONTAINER = "/etc/litellm/config.yaml"
# Set by `llmops up` to the config file's digest: a changed config then changes the gateway's
# environment, so compose recreates it, and a gateway still running an older one can be told.
CONFIG_DIGEST_ENV = "LLMOPS_GATEWAY_CONFIG_SHA256"


# ---- the field types ------------------------------------------------------------------------------

def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _number(v: Any) -> int | float | None:
    """A non-negative finite number; a numeric string ("2") is read as LiteLLM would, "2s" is not."""
    if v is None:
        return None
    x: Any = v
    if isinstance(v, str):
        try:
            x = int(v) if v.strip().isdigit() else float(v)
        except ValueError:
            x = None
    if not _is_num(x) or not math.isfinite(x) or x < 0:
        raise PydanticCustomError("llmops_number", "must be a non-negative number")
    return x


def _count(v: Any) -> int | None:
    """A non-negative whole number (LiteLLM does `range(num_retries)` with it): 1.5 is refused."""
    if v is None:
        return None
    if isinstance(v, str) and v.strip().isdigit():
        return int(v)
    if _is_num(v) and math.isfinite(v) and v >= 0 and float(v).is_integer():
        return int(v)
    raise PydanticCustomError("llmops_count", "must be a non-negative integer")


def _flag(v: Any) -> bool | None:
    if v is None or isinstance(v, bool):
        return v
    raise PydanticCustomError("llmops_flag", "must be true or false")


def _text(v: Any) -> str | None:
    """A name or URL; a bare YAML number (`id: 1`) is read as its text."""
    if v is None or isinstance(v, str):
        return v
    if _is_num(v):
        return str(v)
    raise PydanticCustomError("llmops_text", "must be a string")


def _section(v: Any) -> Any:
    """A section left empty in YAML (`litellm_settings:`) is null: read as an empty mapping."""
    return {} if v is None else v


Number = Annotated[Union[int, float, None], PlainValidator(_number)]
Count = Annotated[Union[int, None], PlainValidator(_count)]
Flag = Annotated[Union[bool, None], PlainValidator(_flag)]
Text = Annotated[Union[str, None], PlainValidator(_text)]


def _never_kept(v: Any) -> Any:
    """api_key: only whether one is set survives reading (never its value)."""
    return None if v is None else SET


class _Section(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=False)

    def extras(self) -> dict[str, Any]:
        return dict(self.__pydantic_extra__ or {})


class LitellmParams(_Section):
    model: Text = None
    api_base: Text = None
    order: Number = None
    timeout: Number = None
    stream_timeout: Number = None
    max_retries: Count = None
    cooldown_time: Number = None
    api_key: Annotated[Union[str, None], PlainValidator(_never_kept)] = Field(default=None, repr=False)


class ModelInfo(_Section):
    id: Text = None
    cooldown_time: Number = None
    allowed_fails: Count = None


class Deployment(_Section):
    model_name: Text = None
    litellm_params: Annotated[LitellmParams, BeforeValidator(_section)] = Field(default_factory=LitellmParams)
    model_info: Annotated[ModelInfo, BeforeValidator(_section)] = Field(default_factory=ModelInfo)

    @property
    def name(self) -> str | None:
        """How warnings name it: its model id, else where it sends."""
        return self.model_info.id or self.litellm_params.api_base


class RouterSettings(_Section):
    num_retries: Count = None
    allowed_fails: Count = None
    cooldown_time: Number = None
    retry_after: Number = None
    enable_pre_call_checks: Flag = None
    routing_strategy: Text = None
    timeout: Number = None
    stream_timeout: Number = None
    disable_cooldowns: Flag = None

    def is_set(self, key: str) -> bool:
        return key in self.model_fields_set or key in (self.__pydantic_extra__ or {})


class LitellmSettings(_Section):
    num_retries: Count = None


class GatewayConfig(BaseModel):
    model_config = ConfigDict(extra="allow")

    model_list: list[Deployment]
    router_settings: Annotated[RouterSettings, BeforeValidator(_section)] = Field(default_factory=RouterSettings)
    litellm_settings: Annotated[LitellmSettings, BeforeValidator(_section)] = Field(default_factory=LitellmSettings)
    general_settings: Annotated[dict[str, Any], BeforeValidator(_section)] = Field(default_factory=dict)

    @classmethod
    def parse(cls, doc: Any, source: str = "LiteLLM config") -> "GatewayConfig":
        """The typed config; ConfigError (one line: source, field path, what was expected)."""
        if isinstance(doc, GatewayConfig):
            return doc
        if not isinstance(doc, Mapping) or not isinstance(doc.get("model_list"), list):
            raise ConfigError(f"{source}: no model_list")
        try:
            return cls.model_validate(dict(doc))
        except ValidationError as e:
            raise ConfigError(f"{source}: {shape_error(e)}") from None


# What a pydantic error type means, in the words the message uses.
EXPECTED = {"model_type": "must be a mapping", "dict_type": "must be a mapping", "list_type": "must be a list",
            "missing": "is required"}


def field_path(loc: tuple[Any, ...]) -> str:
    """('model_list', 1, 'litellm_params', 'timeout') -> model_list[1].litellm_params.timeout"""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def shape_error(e: ValidationError) -> str:
    """The first error, as `FIELD must be X, got VALUE` (more are counted, not listed: one line)."""
    errs = e.errors(include_url=False)
    first = errs[0]
    what = EXPECTED.get(first["type"]) or first["msg"]
    # the offending value, scrubbed: a list where a mapping belongs may hold the mapping's api_key
    got = scrub(repr(first.get("input")), limit=None)
    got = got if len(got) <= 60 else got[:57] + "..."
    more = f" (and {len(errs) - 1} more)" if len(errs) > 1 else ""
    return f"{field_path(tuple(first['loc']))} {what}, got {got}{more}"


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
        from .stack import backend_of   # the host, through the stack's DNS names (an alias of a service)

        for d in self.deployments:
            if backend_of(str(d.get("api_base") or "")) == service:
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


def public_router_settings(rs: RouterSettings) -> dict[str, Any]:
    """router_settings as the run folder may hold them: the allow-listed ones valued, the others
    named only, in the order the file has them."""
    values = {**rs.model_dump(exclude_unset=True), **rs.extras()}
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


# ---- reading ------------------------------------------------------------------------------------------

def _read_doc(path: Path) -> Any:
    from .validate import read_config_text

    text = read_config_text(path, "LiteLLM config")
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise ConfigError(f"LiteLLM config {path}{f' line {mark.line + 1}' if mark else ''}: malformed YAML") from None


def read_config(path: Path) -> GatewayConfig:
    """The typed config at `path`: every reader of the LiteLLM config goes through here."""
    return GatewayConfig.parse(_read_doc(path), f"LiteLLM config {path}")


def load_config(path: Path) -> dict[str, Any]:
    """The config as the plain mapping the file holds, checked by the typed reader first."""
    doc = _read_doc(path)
    GatewayConfig.parse(doc, f"LiteLLM config {path}")
    return doc


def _typed(doc: GatewayConfig | Mapping[str, Any]) -> GatewayConfig:
    return GatewayConfig.parse(doc)


def main_alias(doc: GatewayConfig | Mapping[str, Any]) -> str | None:
    """The model_name most deployments share: the alias that has a failover (the first on a tie)."""
    names = [m.model_name for m in _typed(doc).model_list if m.model_name]
    return max(names, key=names.count) if names else None


def lint(doc: GatewayConfig | Mapping[str, Any], alias: str | None = None) -> list[str]:
    """Warnings for router settings that predict a slow or lossy failover (pure).  `alias` is the
    gateway's `llmops.model-alias` label; without it, the config's main alias."""
    cfg = _typed(doc)
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


def public_deployment(m: Deployment) -> dict[str, Any]:
    """One deployment as the run folder may hold it: what shapes failover, valued; its other
    settings (api_key, rpm, a provider's credentials) named under `other` with SET."""
    p, i = m.litellm_params, m.model_info
    other = {f"litellm_params.{k}": SET for k in p.extras()}
    if p.api_key is not None:
        other["litellm_params.api_key"] = SET
    other.update({f"model_info.{k}": SET for k in i.extras()})
    return {"id": i.id, "api_base": public_api_base(p.api_base), "order": p.order, "timeout": p.timeout,
            "stream_timeout": p.stream_timeout, "max_retries": p.max_retries,
            "cooldown_time": deployment_cooldown(m), "allowed_fails": i.allowed_fails, "other": other}


def summarize(path: Path, alias: str | None = None) -> RouterSummary:
    cfg = read_config(path)
    alias = alias or main_alias(cfg)
    deps = [public_deployment(m) for m in cfg.model_list if m.model_name == alias]
    return RouterSummary(str(path), public_router_settings(cfg.router_settings), deps, lint(cfg, alias))


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
    env = dict(e.split("=", 1) for e in cfg.get("Env") or [] if "=" in e)
    return config_argument([str(a) for a in argv], env) or CONFIG_IN_CONTAINER


MASTER_KEY_ENV = "LITELLM_MASTER_KEY"   # LiteLLM's own variable when its config names none


def master_key_variable(cfg: GatewayConfig | None) -> str | None:
    """The variable the config takes its master key from (`os.environ/VAR`), LiteLLM's default
    LITELLM_MASTER_KEY when it names none, None when the key is written in the config itself."""
    value = (cfg.general_settings if cfg else {}).get("master_key")
    if value is None:
        return MASTER_KEY_ENV
    text = str(value)
    return text.split("/", 1)[1] if text.startswith("os.environ/") else None


def gateway_master_key(gateway_attrs: dict[str, Any], cfg: GatewayConfig | None) -> str | None:
    """The key the running gateway checks: from its own environment, through the variable its
    config names (or the config's literal key)."""
    value = (cfg.general_settings if cfg else {}).get("master_key")
    var = master_key_variable(cfg)
    if var is None:
        return str(value) if value else None
    env = dict(e.split("=", 1) for e in (gateway_attrs.get("Config") or {}).get("Env") or [] if "=" in e)
    return env.get(var) or None


def mounted_config_path(gateway_attrs: dict[str, Any]) -> Path | None:
    """The host file mounted as the gateway's config (LiteLLM read it when it started): the path
    its `--config` names, mapped through its mounts."""
    mounts = [(str(m.get("Source", "")), str(m.get("Destination", "")))
              for m in gateway_attrs.get("Mounts", []) or [] if m.get("Source")]
    return host_path_of(gateway_config_inside(gateway_attrs), mounts)


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
