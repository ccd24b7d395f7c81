"""Warm every slot of every model deployment through the gateway, right after `up`.

Why: a llama-server slot that has never served pays a cold prompt evaluation on its first
request - measured here 0.3-0.5 s against about 0.07 s warm, on this 2-core machine - and
LiteLLM pays a first use of that deployment's client.  The primary is warmed by steady traffic,
the standby is not: without this, the first failed-over request pays a cold start in the middle
of an outage, which is not failover cost.  Each deployment is addressed by its `model_info.id`
(LiteLLM then routes to it alone), with as many concurrent requests as it has slots (llama-server
gives a concurrent request an idle slot), so the standby ends in the same cache state as the
primary.  The prompt is the standard probe's, the one `verify` and the load generator send.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

import httpx

from .context import Context
from .probes import complete
from .stack import Role, Stack

MAX_SLOTS = 16


@dataclass
class Warmed:
    deployment: str                  # its model_info.id
    slots: int
    statuses: list[int | None]
    latency_s: float                 # the slowest of the concurrent requests
    backends: list[str | None]
    error: str | None
    service: str | None = None       # the compose service its api_base names

    @property
    def ok(self) -> bool:
        # The backend that answered is a service; the id is the user's own name for the route.
        want = self.service or self.deployment
        return bool(self.statuses) and all(s == 200 for s in self.statuses) \
            and all(b == want for b in self.backends)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "latency_s": round(self.latency_s, 3), "ok": self.ok}


def slots_of(url: str) -> int:
    """llama-server's slot count from /props (1 when it cannot say)."""
    try:
        n = int(httpx.get(f"{url}/props", timeout=5).json().get("total_slots") or 1)
    except (httpx.HTTPError, ValueError, TypeError, AttributeError):
        return 1
    return max(1, min(n, MAX_SLOTS))


def warm_routes(ctx: Context, stack: Stack | None = None, timeout_s: float = 30.0) -> list[Warmed]:
    """Warm each deployment of the gateway's alias in the config it really has mounted; failures
    are returned, not raised."""
    stack = stack or ctx.stack()
    gw = stack.require(Role.GATEWAY)
    router = stack.router
    if router is None:
        return []
    by_name = stack.by_name
    key = ctx.master_key or ""
    out = []
    for dep in router.deployments:
        dep_id, svc = dep.id, by_name.get(stack.backend_of(dep.api_base) or "")
        service = svc.name if svc is not None else stack.backend_of(dep.api_base)
        if not dep_id:
            continue
        n = slots_of(svc.url) if svc is not None else 1
        with ThreadPoolExecutor(max_workers=n) as pool:
            done = list(pool.map(lambda _: complete(gw.url, key, alias=dep_id, timeout=timeout_s,
                                                    max_tokens=4, hosts=stack.hosts), range(n)))
        errors = [c.error for c in done if c.error]
        out.append(Warmed(dep_id, n, [c.status_code for c in done], max(c.latency_s for c in done),
                          [c.backend for c in done], errors[0] if errors else None, service))
    return out
