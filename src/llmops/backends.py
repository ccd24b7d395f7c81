"""Which compose service a LiteLLM api_base reaches: the one rule, shared by the stack snapshot
(which knows every DNS name its containers answer to) and the router summary (which only knows
the api_bases in the config).  Pure and import-free, so neither side has to import the other."""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlparse

# DNS name -> compose service, as `Stack.hosts` builds it from one snapshot.
HostMap = Mapping[str, str]


def backend_of(api_base: str | None, hosts: HostMap) -> str | None:
    """The compose service behind a LiteLLM api_base (`x-litellm-model-api-base`): its URL's host
    name, mapped through `hosts` when it is an alias of a service (an unknown host names itself)."""
    if not api_base:
        return None
    host = urlparse(api_base).hostname
    return hosts.get(host, host) if host else None
