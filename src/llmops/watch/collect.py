"""The HTTP probes of one interval, all at once, each bounded by its own timeout.

Every probe is wrapped in `asyncio.wait_for` as well as httpx's own timeouts: httpx bounds each
read, so a server that trickles a byte now and then could hold a probe for ever; the outer bound
is the probe's whole budget.  No probe outlives the interval's deadline, so a hung service costs
its own probe a timeout and never stalls the loop.

Per interval: GET each service's health path, GET /metrics of each llama-server, ONE one-token
completion through the gateway (the backend that served it is read from LiteLLM's
`x-litellm-model-api-base` header), and the vector DB's point count in the collection rag uses.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import math
import re
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import httpx

from ..probes import completion_payload, judge, parse_completion
from ..redact import scrub
from ..stack import Role
from .metrics import LLAMA_SERIES
from .readings import GatewayReading, HealthReading, LlamaReading, VectorReading
from .targets import Target, WatchPlan

# httpcore 1.0 tries `import sniffio` on every request and takes asyncio when it is missing; a
# failed import is not cached, so without sniffio each request searched sys.path again (a
# quarter of watch's CPU, profiled).  A None entry makes that import fail at once, as it would.
if importlib.util.find_spec("sniffio") is None:
    sys.modules.setdefault("sniffio", None)  # type: ignore[arg-type]

HEALTH_TIMEOUT_S = 2.0        # a llama-server answers /health in milliseconds
METRICS_TIMEOUT_S = 2.0
GATEWAY_TIMEOUT_S = 10.0      # a one-token completion, with one failover retry inside it
MIN_TIMEOUT_S = 0.05
_COLLECTION = re.compile(r"[A-Za-z0-9_.-]{1,255}")

T = TypeVar("T")


class Deadline:
    """The interval's end: a probe's timeout is its own cap or what is left, whichever is less."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.at = clock() + seconds

    def timeout(self, cap: float) -> float:
        return max(MIN_TIMEOUT_S, min(cap, self.at - self.clock()))


async def bounded(start: Callable[[float], Awaitable[T]], timeout: float) -> T:
    """`start(timeout)` with `timeout` as its whole budget (asyncio.TimeoutError past it)."""
    return await asyncio.wait_for(start(timeout), timeout)


def _error(e: BaseException, secrets: tuple[str | None, ...], timeout: float) -> str:
    if isinstance(e, asyncio.TimeoutError):
        return f"no answer within {timeout:.2f} s"
    return scrub(f"{type(e).__name__}: {e}", secrets, limit=200)


def _body(resp: httpx.Response) -> Any:
    try:
        return resp.json()
    except (json.JSONDecodeError, ValueError):
        return resp.text[:500]


async def probe_health(client: httpx.AsyncClient, t: Target, timeout: float,
                       running: bool | None = None, secrets: tuple[str | None, ...] = ()) -> HealthReading:
    if running is False:
        return HealthReading(t.name, t.role, False, None, "container is not running", running)
    if t.health_url is None:
        return HealthReading(t.name, t.role, False, None, t.unreachable or "no URL", running)
    t0 = time.perf_counter()
    try:
        resp = await bounded(lambda s: client.get(t.health_url, timeout=s), timeout)  # type: ignore[arg-type]
    except (asyncio.TimeoutError, httpx.HTTPError) as e:
        return HealthReading(t.name, t.role, False, time.perf_counter() - t0, _error(e, secrets, timeout), running)
    dt = time.perf_counter() - t0
    body = _body(resp)
    reason = scrub(judge(t.expect, resp.status_code, body), secrets, limit=200)
    collection = body.get("collection") if t.role == Role.RAG and isinstance(body, dict) else None
    return HealthReading(t.name, t.role, not reason, dt, reason, running,
                         collection if isinstance(collection, str) and _COLLECTION.fullmatch(collection) else None)


def parse_llama_metrics(text: str) -> tuple[tuple[str, float], ...]:
    """llama-server's Prometheus text: the series we re-export, under our names.  Its series carry
    no labels; a labelled line of a known name is taken too (its labels dropped), a malformed one
    is skipped, never a failure."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        head, _, rest = line.partition(" ")
        name = head.split("{", 1)[0]
        ours = LLAMA_SERIES.get(name)
        if ours is None:
            continue
        try:
            value = float(rest.split()[0])
        except (IndexError, ValueError):
            continue
        if math.isfinite(value):
            out[ours] = value
    return tuple(sorted(out.items()))


# llama-server's own throughput gauges (prompt_tokens_seconds, predicted_tokens_seconds) are
# averages since the previous /metrics read, and every read resets them: a second reader (the
# monitoring profile's Prometheus scraping the server itself) would leave watch zeros.  So the
# rates are computed here from its counters, which no read changes.
RATES = (("llmops_llama_prompt_tokens_per_second", "llmops_llama_prompt_tokens_total", "llmops_llama_prompt_seconds_total"),
         ("llmops_llama_predicted_tokens_per_second", "llmops_llama_predicted_tokens_total",
          "llmops_llama_predicted_seconds_total"))
# Below this, llama-server measured no generation to speak of: the probe's one token costs it
# about 1e-6 s (a request's first token is timed as the prompt's), which would read as 10^6 tokens/s.
MIN_BUSY_S = 0.001


def throughput(before: dict[str, float] | None, now: dict[str, float]) -> dict[str, float]:
    """Tokens per second of work between two readings of the counters; nothing where the server
    did (almost) no such work, or restarted (a counter went down)."""
    out: dict[str, float] = {}
    for rate, tokens, seconds in RATES:
        if before is None or not all(k in before and k in now for k in (tokens, seconds)):
            continue
        dn, dt = now[tokens] - before[tokens], now[seconds] - before[seconds]
        if dn > 0 and dt >= MIN_BUSY_S:
            out[rate] = dn / dt
    return out


async def probe_llama(client: httpx.AsyncClient, t: Target, timeout: float) -> LlamaReading:
    """llama-server's /metrics (501 without `--metrics`: then no series for it)."""
    if t.base_url is None:
        return LlamaReading(t.name, t.role, False)
    try:
        resp = await bounded(lambda s: client.get(f"{t.base_url}/metrics", timeout=s), timeout)
    except (asyncio.TimeoutError, httpx.HTTPError):
        return LlamaReading(t.name, t.role, False)
    if resp.status_code != 200:
        return LlamaReading(t.name, t.role, False)
    return LlamaReading(t.name, t.role, True, parse_llama_metrics(resp.text))


async def probe_gateway(client: httpx.AsyncClient, plan: WatchPlan, timeout: float) -> GatewayReading | None:
    """The one request per interval through the gateway: a one-token completion to its alias."""
    gw = plan.gateway
    if gw is None:
        return None
    missing = ("container is not reachable: " + (gw.unreachable or "no URL")) if gw.base_url is None else \
        "no model alias (label llmops.model-alias)" if not plan.alias else \
        "no master key to send" if not plan.master_key else ""
    if missing:
        return GatewayReading(gw.name, False, 0.0, None, missing)
    key = plan.master_key or ""
    t0 = time.perf_counter()
    try:
        resp = await bounded(lambda s: client.post(
            f"{gw.base_url}/v1/chat/completions", json=completion_payload(plan.alias or "", max_tokens=1),
            headers={"Authorization": f"Bearer {key}"}, timeout=s), timeout)
    except (asyncio.TimeoutError, httpx.HTTPError) as e:
        return GatewayReading(gw.name, False, time.perf_counter() - t0, None, _error(e, (key,), timeout))
    c = parse_completion(resp, time.perf_counter() - t0, (key,), dict(plan.hosts))
    ok = c.status_code == 200
    return GatewayReading(gw.name, ok, c.latency_s, c.backend if ok else None,
                          "" if ok else f"HTTP {c.status_code}: {c.error or ''}"[:200])


async def count_points(client: httpx.AsyncClient, vdb: Target, collection: str, timeout: float) -> int | None:
    if vdb.base_url is None:
        return None
    try:
        resp = await bounded(lambda s: client.post(f"{vdb.base_url}/collections/{collection}/points/count",
                                                   json={"exact": True}, timeout=s), timeout)
        n = resp.json()["result"]["count"] if resp.status_code == 200 else None
    except (asyncio.TimeoutError, httpx.HTTPError, ValueError, KeyError, TypeError):
        return None
    return n if isinstance(n, int) and not isinstance(n, bool) else None


@dataclass
class HttpReadings:
    health: list[HealthReading]
    llama: list[LlamaReading]
    gateway: GatewayReading | None
    vectordb: VectorReading | None


class HttpProbes:
    """The probes of one plan, on one client kept across intervals (connections are reused, so an
    interval costs no TCP handshakes).  It remembers the collection rag named."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.collection: str | None = None
        self.counters: dict[str, dict[str, float]] = {}    # each llama-server's last reading

    def _with_rates(self, r: LlamaReading) -> LlamaReading:
        if not r.available:
            return r
        now = dict(r.values)
        rates = throughput(self.counters.get(r.service), now)
        self.counters[r.service] = now
        return replace(r, values=tuple(sorted({**now, **rates}.items())))

    async def run(self, plan: WatchPlan, deadline: Deadline, running: dict[str, bool] | None = None) -> HttpReadings:
        running = running or {}
        secrets = (plan.master_key,)
        health = {t.name: asyncio.ensure_future(probe_health(self.client, t, deadline.timeout(HEALTH_TIMEOUT_S),
                                                             running.get(t.name), secrets))
                  for t in plan.targets}
        llama = [probe_llama(self.client, t, deadline.timeout(METRICS_TIMEOUT_S))
                 for t in plan.targets if t.is_llama and running.get(t.name) is not False]
        gateway = probe_gateway(self.client, plan, deadline.timeout(GATEWAY_TIMEOUT_S))
        vectordb = self._vectordb(plan, health, deadline)
        llama_r, gateway_r, vectordb_r = await asyncio.gather(asyncio.gather(*llama), gateway, vectordb)
        return HttpReadings([await h for h in health.values()], [self._with_rates(r) for r in llama_r],
                            gateway_r, vectordb_r)

    async def _vectordb(self, plan: WatchPlan, health: dict[str, "asyncio.Future[HealthReading]"],
                        deadline: Deadline) -> VectorReading | None:
        vdb, rag = plan.role(Role.VECTORDB), plan.role(Role.RAG)
        if vdb is None:
            return None
        if self.collection is None and rag is not None:   # only until rag has named it once
            self.collection = (await health[rag.name]).body_collection
        ready = (await health[vdb.name]).ok
        points = await count_points(self.client, vdb, self.collection, deadline.timeout(HEALTH_TIMEOUT_S)) \
            if ready and self.collection else None
        return VectorReading(vdb.name, vdb.role, ready, points)
