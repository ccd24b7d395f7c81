"""Every LiteLLM config shape llmops cannot use is a ConfigError (exit 2) naming the file and the field
path, on one line, from every reader (summarize: the failover lint, the manifest, the warm-up, the
drift check all go through it).  The first six rows crashed with exit 1 before the typed reader."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from llmops.errors import ConfigError, ExitCode
from llmops.gateway_config import lint, load_config, main_alias, read_config, summarize

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = yaml.safe_load((ROOT / "compose" / "litellm" / "config.yaml").read_text())


def _with(path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(SHIPPED)
    at: Any = doc
    for k in path[:-1]:
        at = at[k]
    at[path[-1]] = value
    return doc


ROWS = [
    # (the change, the field path the message names, what it says)
    (_with(("router_settings",), [1]), "router_settings", "must be a mapping"),
    (_with(("model_list", 1), "inference-code"), "model_list[1]", "must be a mapping"),
    (_with(("model_list", 0, "model_info"), "x"), "model_list[0].model_info", "must be a mapping"),
    (_with(("model_list", 0, "litellm_params"), ["openai/x", "http://a:1"]), "model_list[0].litellm_params",
     "must be a mapping"),
    (_with(("router_settings", "num_retries"), "1.5"), "router_settings.num_retries", "must be a non-negative integer"),
    ({**_with(("router_settings", "num_retries"), 0), "litellm_settings": None, "x": 1}, None, None),  # must pass
    (_with(("router_settings", "num_retries"), 1.5), "router_settings.num_retries", "must be a non-negative integer"),
    (_with(("router_settings", "num_retries"), True), "router_settings.num_retries", "must be a non-negative integer"),
    (_with(("router_settings", "allowed_fails"), [0]), "router_settings.allowed_fails", "must be a non-negative integer"),
    (_with(("router_settings", "cooldown_time"), {"s": 5}), "router_settings.cooldown_time",
     "must be a non-negative number"),
    (_with(("router_settings", "retry_after"), -1), "router_settings.retry_after", "must be a non-negative number"),
    (_with(("router_settings", "enable_pre_call_checks"), "yes please"), "router_settings.enable_pre_call_checks",
     "must be true or false"),
    (_with(("router_settings", "routing_strategy"), ["simple-shuffle"]), "router_settings.routing_strategy",
     "must be a string"),
    (_with(("model_list", 1, "litellm_params", "timeout"), "2s"), "model_list[1].litellm_params.timeout",
     "must be a non-negative number"),
    (_with(("model_list", 0, "litellm_params", "stream_timeout"), float("inf")),
     "model_list[0].litellm_params.stream_timeout", "must be a non-negative number"),
    (_with(("model_list", 1, "litellm_params", "max_retries"), 0.5), "model_list[1].litellm_params.max_retries",
     "must be a non-negative integer"),
    (_with(("model_list", 1, "litellm_params", "order"), "second"), "model_list[1].litellm_params.order",
     "must be a non-negative number"),
    (_with(("model_list", 0, "litellm_params", "api_base"), {"host": "x"}), "model_list[0].litellm_params.api_base",
     "must be a string"),
    (_with(("model_list", 0, "litellm_params", "cooldown_time"), "later"),
     "model_list[0].litellm_params.cooldown_time", "must be a non-negative number"),
    (_with(("model_list", 1, "model_info", "cooldown_time"), "0s"), "model_list[1].model_info.cooldown_time",
     "must be a non-negative number"),
    (_with(("model_list", 1, "model_info", "id"), ["inference-code"]), "model_list[1].model_info.id",
     "must be a string"),
    (_with(("model_list", 0, "model_info", "allowed_fails"), -2), "model_list[0].model_info.allowed_fails",
     "must be a non-negative integer"),
    (_with(("model_list", 0, "model_name"), {"chat": 1}), "model_list[0].model_name", "must be a string"),
    (_with(("model_list", 1), None), "model_list[1]", "must be a mapping"),
    (_with(("litellm_settings",), "off"), "litellm_settings", "must be a mapping"),
    (_with(("litellm_settings", "num_retries"), "two"), "litellm_settings.num_retries",
     "must be a non-negative integer"),
    (_with(("general_settings",), ["master_key"]), "general_settings", "must be a mapping"),
]


@pytest.mark.parametrize("doc, field, expected", ROWS, ids=[r[1] or "null-litellm_settings-passes" for r in ROWS])
def test_every_bad_shape_is_a_config_error_naming_the_field(tmp_path: Path, doc: dict[str, Any],
                                                            field: str | None, expected: str | None) -> None:
    p = tmp_path / "config.yaml"
    p.write_text(yaml.safe_dump(doc))
    if field is None:       # `litellm_settings:` (null) with num_retries 0 only warns
        assert any(w.startswith("num_retries < 1") for w in summarize(p).warnings)
        return
    for reader in (summarize, load_config, read_config):
        with pytest.raises(ConfigError) as ei:
            reader(p)
        msg = str(ei.value)
        assert ei.value.exit_code == ExitCode.USAGE
        assert msg.startswith(f"LiteLLM config {p}: {field} {expected}, got "), msg
        assert "\n" not in msg


def test_the_pure_functions_check_a_plain_mapping_too() -> None:
    """lint and main_alias take the mapping load_config returns (tests edit it): a bad edit is a
    ConfigError there as well, not an AttributeError."""
    for doc, field in ((ROWS[0][0], "router_settings"), (ROWS[1][0], "model_list[1]")):
        for fn in (lint, main_alias):
            with pytest.raises(ConfigError, match=re.escape(f"LiteLLM config: {field} must be a mapping")):
                fn(doc)


def test_extra_keys_anywhere_are_kept_and_not_checked(tmp_path: Path) -> None:
    doc = copy.deepcopy(SHIPPED)
    doc["router_settings"]["redis_host"] = {"any": ["shape"]}
    doc["model_list"][0]["litellm_params"]["rpm"] = "lots"
    doc["model_list"][0]["model_info"]["base_model"] = ["x"]
    doc["environment_variables"] = [1, 2]
    p = tmp_path / "config.yaml"
    p.write_text(yaml.safe_dump(doc))
    cfg = read_config(p)
    assert cfg.router_settings.extras() == {"redis_host": {"any": ["shape"]}}
    assert cfg.model_list[0].litellm_params.extras()["rpm"] == "lots"
    assert summarize(p).warnings == []


def test_a_key_in_a_wrongly_shaped_value_is_not_quoted(tmp_path: Path) -> None:
    doc = _with(("model_list", 0, "litellm_params"), ["openai/x", "sk-live-0123456789abcdef0123"])
    p = tmp_path / "config.yaml"
    p.write_text(yaml.safe_dump(doc))
    with pytest.raises(ConfigError) as ei:
        read_config(p)
    assert "sk-live" not in str(ei.value) and "0123456789abcdef" not in str(ei.value)
