"""Read the LiteLLM config the gateway really runs, and lint its router settings for slow failover.

- schema: the typed reader (pydantic shapes; a shape llmops cannot use is one ConfigError line);
- location: where the config is inside the gateway container and on this host;
- master_key: the key the running gateway checks;
- router: the lint, the router summary that may leave for a run folder, and the drift between
  the file and what the running gateway loaded.

Every name callers used before the split is re-exported here.
"""

from __future__ import annotations

from .location import (
    CONFIG_DIGEST_ENV,
    CONFIG_IN_CONTAINER,
    config_argument,
    container_env,
    gateway_config_inside,
    host_path_of,
    mounted_config_path,
)
from .master_key import MASTER_KEY_ENV, gateway_master_key, master_key_variable
from .router import (
    LITELLM_DEFAULT_TIMEOUT_S,
    MAX_SANE_TIMEOUT_S,
    ROUTER_ALLOWED,
    RouterSummary,
    config_drift,
    deployment_cooldown,
    file_digest,
    last_standing,
    lint,
    main_alias,
    public_api_base,
    public_deployment,
    public_router_settings,
    running_router,
    summarize,
)
from .schema import (
    EXPECTED,
    Count,
    Deployment,
    Flag,
    GatewayConfig,
    LitellmParams,
    LitellmSettings,
    ModelInfo,
    Number,
    RouterSettings,
    Text,
    field_path,
    load_config,
    read_config,
    shape_error,
)

__all__ = [
    "CONFIG_DIGEST_ENV", "CONFIG_IN_CONTAINER", "EXPECTED", "LITELLM_DEFAULT_TIMEOUT_S", "MASTER_KEY_ENV",
    "MAX_SANE_TIMEOUT_S", "ROUTER_ALLOWED", "Count", "Deployment", "Flag", "GatewayConfig", "LitellmParams",
    "LitellmSettings", "ModelInfo", "Number", "RouterSettings", "RouterSummary", "Text", "config_argument",
    "config_drift", "container_env", "deployment_cooldown", "field_path", "file_digest", "gateway_config_inside",
    "gateway_master_key", "host_path_of", "last_standing", "lint", "load_config", "main_alias",
    "master_key_variable", "mounted_config_path", "public_api_base", "public_deployment",
    "public_router_settings", "read_config", "running_router", "shape_error", "summarize",
]
