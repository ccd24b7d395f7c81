"""The master key the running gateway checks: the variable its LiteLLM config takes it from, read
from the gateway container's own environment (or the key the config writes out)."""

from __future__ import annotations

from typing import Any

from .location import container_env
from .schema import GatewayConfig

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
    return container_env(gateway_attrs).get(var) or None
