"""The LiteLLM config as llmops reads it: one typed reader (:func:`read_config`) parses the file
into the pydantic models below, exactly the fields llmops reads, each type-checked, every other key
kept as the user wrote it (LiteLLM has many we never look at).  A shape llmops cannot use is a
:class:`ConfigError` (exit 2) naming the file, the field path and what was expected, never an
AttributeError later in the lint or the manifest.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Union

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainValidator, ValidationError
from pydantic_core import PydanticCustomError

from ..errors import ConfigError
from ..redact import SET, scrub

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


class _Timing(_Section):
    """The per-call settings a deployment and the router both take (a deployment's own win)."""

    timeout: Number = None
    stream_timeout: Number = None
    cooldown_time: Number = None


class LitellmParams(_Timing):
    """A deployment's `litellm_params`: where it sends and how long an attempt may take."""

    model: Text = None
    api_base: Text = None
    order: Number = None
    max_retries: Count = None
    api_key: Annotated[Union[str, None], PlainValidator(_never_kept)] = Field(default=None, repr=False)


class ModelInfo(_Section):
    """A deployment's `model_info`: its id (what a request can name to reach it alone) and the
    cooldown settings LiteLLM looks up here before litellm_params."""

    id: Text = None
    cooldown_time: Number = None
    allowed_fails: Count = None


class Deployment(_Section):
    """One entry of `model_list`: `model_name` is the alias clients ask for."""

    model_name: Text = None
    litellm_params: Annotated[LitellmParams, BeforeValidator(_section)] = Field(default_factory=LitellmParams)
    model_info: Annotated[ModelInfo, BeforeValidator(_section)] = Field(default_factory=ModelInfo)

    @property
    def name(self) -> str | None:
        """How warnings name it: its model id, else where it sends."""
        return self.model_info.id or self.litellm_params.api_base


class RouterSettings(_Timing):
    """`router_settings`: retries, cooldowns and the defaults every deployment inherits."""

    num_retries: Count = None
    allowed_fails: Count = None
    retry_after: Number = None
    enable_pre_call_checks: Flag = None
    routing_strategy: Text = None
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


# ---- reading ------------------------------------------------------------------------------------------

def _read_doc(path: Path) -> Any:
    from ..validate import read_config_text

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
