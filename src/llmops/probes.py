"""Health and functional probes over real HTTP (httpx, async, all endpoints concurrently)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from .backends import HostMap, backend_of
from .redact import scrub, scrub_json
from .stack import PORT_LABEL, Service


@dataclass
class ProbeResult:
    service: str
    url: str
    status_code: int | None
    latency_s: float
    ok: bool
    body: Any = None
    reason: str = ""
    headers: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"service": self.service, "url": self.url, "status_code": self.status_code,
                "latency_s": round(self.latency_s, 4), "ok": self.ok, "reason": self.reason,
                "body": self.body}


MAX_SCAN_BODY = 65536


def _body(resp: httpx.Response) -> Any:
    try:
        return resp.json()
    except (json.JSONDecodeError, ValueError):
        return resp.text[:MAX_SCAN_BODY]


# What DESIGN's table says each kind of service answers when healthy.  A check returns "" when the
# body is as expected, else the reason it is not.
def _expect_llama(code: int, body: Any) -> str:
    return "" if code == 200 and isinstance(body, dict) and body.get("status") == "ok" else \
        f"expected 200 {{'status':'ok'}}, got {code} {str(body)[:120]}"


def _expect_litellm(code: int, body: Any) -> str:
    if code != 200 or not isinstance(body, dict):
        return f"expected 200 with healthy_count, got {code} {str(body)[:120]}"
    if body.get("unhealthy_count", 1) != 0 or body.get("healthy_count", 0) < 1:
        return (f"healthy_count={body.get('healthy_count')} unhealthy_count={body.get('unhealthy_count')}")
    return ""


def _expect_rag(code: int, body: Any) -> str:
    if code != 200 or not isinstance(body, dict):
        return f"expected 200 JSON, got {code}"
    bad = [k for k in ("qdrant", "embedding") if body.get(k) is not True]
    return f"{', '.join(bad)} not true" if bad else ""


def _expect_embedding(code: int, body: Any) -> str:
    if code == 200 and isinstance(body, dict) and body.get("ok") is True and body.get("dim") == 384:
        return ""
    return f"expected 200 {{'ok':true,'dim':384}}, got {code} {str(body)[:120]}"


def _expect_qdrant(code: int, body: Any) -> str:
    return "" if code == 200 else f"expected 200 from /readyz, got {code}"


EXPECTATIONS: dict[str, Callable[[int, Any], str]] = {
    "llama": _expect_llama,
    "litellm": _expect_litellm,
    "rag": _expect_rag,
    "embedding": _expect_embedding,
    "qdrant": _expect_qdrant,
}


def no_port_reason(svc: Service) -> str:
    """Why llmops has no host port to probe, in the terms of the fix."""
    if svc.state != "running":
        return f"container is {svc.state}"
    if not svc.port:
        return f"no {PORT_LABEL} label (the container port to probe): run `llmops adopt`"
    return f"container port {svc.port} ({PORT_LABEL}) is not published on the host"


def health_request(svc: Service, master_key: str | None) -> tuple[str, dict[str, str]]:
    """The endpoint to probe: the gateway's keyed /health proves both deployments answer."""
    if svc.expect == "litellm" and master_key:
        return f"{svc.url}/health", {"Authorization": f"Bearer {master_key}"}
    return f"{svc.url}{svc.health_path}", {}


def judge(expect: str, code: int, body: Any) -> str:
    fn = EXPECTATIONS.get(expect)
    if fn is None:
        return "" if 200 <= code < 300 else f"HTTP {code}"
    return fn(code, body)


async def probe_one(client: httpx.AsyncClient, svc: Service, master_key: str | None,
                    timeout: float) -> ProbeResult:
    if svc.host_port is None:
        return ProbeResult(svc.name, "-", None, 0.0, False, reason=no_port_reason(svc))
    url, headers = health_request(svc, master_key)
    t = time.perf_counter()
    try:
        resp = await client.get(url, headers=headers, timeout=timeout)
    except httpx.HTTPError as e:
        return ProbeResult(svc.name, url, None, time.perf_counter() - t, False,
                           reason=scrub(f"{e.__class__.__name__}: {e}", [master_key], limit=200))
    dt = time.perf_counter() - t
    # The body goes into evidence: scrubbed (LiteLLM's /health lists each deployment's params) and,
    # when it is not JSON, cut only after scrubbing, so a key at the cut cannot survive in part.
    body = _body(resp)
    body = scrub(body, [master_key], limit=500) if isinstance(body, str) else scrub_json(body, [master_key])
    reason = judge(svc.expect, resp.status_code, body)
    return ProbeResult(svc.name, url, resp.status_code, dt, not reason, body, reason)


async def probe_all(services: list[Service], master_key: str | None, timeout: float = 10.0) -> list[ProbeResult]:
    async with httpx.AsyncClient() as client:
        return list(await asyncio.gather(*(probe_one(client, s, master_key, timeout) for s in services)))


def run_health(services: list[Service], master_key: str | None, timeout: float = 10.0) -> tuple[list[ProbeResult], float]:
    t = time.perf_counter()
    results = asyncio.run(probe_all(services, master_key, timeout))
    return results, time.perf_counter() - t


# ---- functional probes -----------------------------------------------------------------------

@dataclass
class Completion:
    status_code: int | None
    latency_s: float
    backend: str | None
    model_id: str | None
    retries: str | None
    fallbacks: str | None
    error: str | None = None
    text: str | None = None
    completion_tokens: int | None = None


def parse_completion(resp: httpx.Response, latency_s: float, secrets: tuple[str | None, ...] = (),
                     hosts: HostMap | None = None) -> Completion:
    """What a completion's reply says; an error body is kept scrubbed of `secrets` and of anything
    key-like (LiteLLM's 401 quotes the key's tail and hash).  `hosts` (`Stack.hosts`) turns an
    api_base that names a service by an alias back into the service."""
    h = resp.headers
    text, tokens = None, None
    if resp.status_code == 200:
        try:
            body = resp.json()
            text = body["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError):
            body = None
        usage = body.get("usage") if isinstance(body, dict) else None
        n = usage.get("completion_tokens") if isinstance(usage, dict) else None
        tokens = n if isinstance(n, int) else None
    return Completion(resp.status_code, latency_s, backend_of(h.get("x-litellm-model-api-base"), hosts or {}),
                      h.get("x-litellm-model-id"), h.get("x-litellm-attempted-retries"),
                      h.get("x-litellm-attempted-fallbacks"),
                      None if resp.status_code == 200 else scrub(resp.text, secrets, limit=200), text, tokens)


def completion_payload(alias: str, prompt: str = "Say hello in three words.", max_tokens: int = 8) -> dict[str, Any]:
    return {"model": alias, "messages": [{"role": "user", "content": prompt}],
            "max_tokens": max_tokens, "temperature": 0}


def complete(gateway_url: str, master_key: str, alias: str, timeout: float = 30.0,
             max_tokens: int = 8, hosts: HostMap | None = None) -> Completion:
    """`alias` may also be a deployment's model_info.id: LiteLLM then routes to it alone."""
    payload = completion_payload(alias, max_tokens=max_tokens)
    t = time.perf_counter()
    try:
        resp = httpx.post(f"{gateway_url}/v1/chat/completions", json=payload,
                          headers={"Authorization": f"Bearer {master_key}"}, timeout=timeout)
    except httpx.HTTPError as e:
        return Completion(None, time.perf_counter() - t, None, None, None, None,
                          scrub(f"{e.__class__.__name__}: {e}", [master_key], limit=300))
    return parse_completion(resp, time.perf_counter() - t, (master_key,), hosts)


def contract_answers(svc: Service, timeout: float = 3.0) -> list[tuple[str, Any, Any]]:
    """For `llmops adopt`: what a running, unlabelled service answers on each port it publishes
    (loopback only): (url, GET /health body, POST /v1/embeddings body), None where it did not."""
    out = []
    with httpx.Client(timeout=timeout) as http:
        for port in sorted(svc.published_host_ports):
            url = f"http://127.0.0.1:{port}"
            bodies: list[Any] = []
            for method, path, body in (("GET", "/health", None), ("POST", "/v1/embeddings", {"input": ["llmops adopt"]})):
                try:
                    r = http.request(method, f"{url}{path}", json=body)
                    bodies.append(r.json() if r.status_code == 200 else None)
                except (httpx.HTTPError, ValueError):
                    bodies.append(None)
            out.append((url, bodies[0], bodies[1]))
    return out
