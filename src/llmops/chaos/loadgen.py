"""Open-loop, constant-rate load through the gateway, every request recorded on one clock.

Open loop: request k is sent at start + k/rps whether or not earlier ones have answered, so a
hung backend shows up as latency instead of silently lowering the offered load.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlparse

import httpx

from ..backends import HostMap
from ..probes import completion_payload, parse_completion
from ..redact import bearer_of, scrub

MAX_RPS = 50.0
MAX_DURATION_S = 600.0
MAX_TOKENS_LIMIT = 256
# Below the gateway's keep-alive timeout (uvicorn: 5 s), so the client, not the server, closes idle connections.
KEEPALIVE_EXPIRY_S = 2.0


@dataclass
class Request:
    seq: int
    t_send: float          # monotonic
    latency_s: float
    status: int | None
    backend: str | None
    model_id: str | None
    retries: str | None
    fallbacks: str | None
    error: str | None
    completion_tokens: int | None = None

    @property
    def t_done(self) -> float:
        return self.t_send + self.latency_s

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def assert_loopback(url: str) -> None:
    host = urlparse(url).hostname or ""
    if not (host == "localhost" or host.startswith("127.") or host == "::1"):
        raise ValueError(f"load generator targets loopback only, not {host}")


class LoadGenerator:
    def __init__(self, url: str, master_key: str, alias: str, rps: float, max_duration_s: float,
                 timeout_s: float = 30.0, on_request: Any = None, max_tokens: int = 1) -> None:
        assert_loopback(url)
        self.url = f"{url}/v1/chat/completions"
        self.headers = {"Authorization": f"Bearer {master_key}"}
        self.alias = alias
        self.rps = rps
        self.max_tokens = max_tokens
        self.max_duration_s = max_duration_s
        self.max_requests = int(rps * max_duration_s) + 1    # bounded in count as well as time
        self.timeout_s = timeout_s
        self.on_request = on_request
        # the stack's DNS names (`Stack.hosts`), set by the caller: how a reply's api_base header
        # names the compose service that served it when the config reaches it by an alias
        self.hosts: HostMap = {}
        self.requests: list[Request] = []
        self._stop = asyncio.Event()

    def stop(self) -> None:
        self._stop.set()

    async def _one(self, client: httpx.AsyncClient, seq: int) -> None:
        t = time.monotonic()
        try:
            resp = await client.post(self.url, json=completion_payload(self.alias, max_tokens=self.max_tokens),
                                     headers=self.headers, timeout=self.timeout_s)
            c = parse_completion(resp, time.monotonic() - t, tuple(bearer_of(self.headers)), self.hosts)
            r = Request(seq, t, c.latency_s, c.status_code, c.backend, c.model_id, c.retries, c.fallbacks, c.error,
                        c.completion_tokens)
        except httpx.HTTPError as e:
            r = Request(seq, t, time.monotonic() - t, None, None, None, None, None,
                        scrub(f"{e.__class__.__name__}: {e}", bearer_of(self.headers), limit=200))
        self.requests.append(r)
        if self.on_request:
            self.on_request(r)

    async def run(self) -> list[Request]:
        # Idle connections are dropped well before the gateway's own keep-alive timeout (uvicorn's
        # 5 s, which LiteLLM keeps): at httpx's default of 5 s too, a request sent on a
        # connection the server was closing at that moment died with "Server disconnected
        # without sending a response" (1 of 750 in a busy benchmark run), a client-side race
        # counted as a failed request of the gateway.
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=50, keepalive_expiry=KEEPALIVE_EXPIRY_S)
        async with httpx.AsyncClient(limits=limits) as client:
            tasks: list[asyncio.Task[None]] = []
            start = time.monotonic()
            for k in range(self.max_requests):
                due = start + k / self.rps
                if due - start > self.max_duration_s or self._stop.is_set():
                    break
                delay = due - time.monotonic()
                if delay > 0:
                    try:
                        await asyncio.wait_for(self._stop.wait(), timeout=delay)
                        break
                    except asyncio.TimeoutError:
                        pass
                tasks.append(asyncio.create_task(self._one(client, k)))
            if tasks:
                await asyncio.gather(*tasks)
        return sorted(self.requests, key=lambda r: r.t_send)
