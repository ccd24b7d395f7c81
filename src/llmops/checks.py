"""The verify checks: 01 services status, 02 functional requests, 03 health endpoints."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

from .context import Context
from .embedcheck import embedding_criteria, probe_embedding
from .errors import ExitCode, LlmopsError
from .evidence import CheckResult, Criterion, utc_now_iso
from .probes import ProbeResult, complete, run_health
from .runner import WARN, Check, Phase, Run, Say
from .stack import Role, Service, Stack, select


def _fmt_uptime(s: float | None) -> str:
    if s is None:
        return "-"
    m, sec = divmod(int(s), 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m{sec:02d}s" if h else f"{m}m{sec:02d}s"


def status_result(declared: list[str], services: list[Service], started: float, started_at: str) -> CheckResult:
    """01: every declared service is running and healthy (pure over discovered services)."""
    found = {s.name: s for s in services}
    rows = []
    for name in declared:
        s = found.get(name)
        rows.append({
            "service": name,
            "container": s.container_name if s else None,
            "state": s.state if s else "missing",
            "health": s.health if s else None,
            "uptime_s": round(s.uptime_s(), 1) if s and s.uptime_s() is not None else None,
            "ports": f"{s.host_ip}:{s.host_port}->{s.port}" if s and s.host_port else None,
            "role": s.role if s else None,
        })
    healthy = sum(1 for name in declared if name in found and found[name].up_healthy)
    dod = [Criterion.judge("all declared services Up (healthy)", f"{len(declared)}/{len(declared)}",
                           healthy, lambda h: h == len(declared), samples=len(declared),
                           shown=f"{healthy}/{len(declared)}")]
    return CheckResult("status", started_at, time.perf_counter() - started,
                       {"services_total": len(declared), "services_healthy": healthy}, dod, {"services": rows})


def status_text(r: CheckResult) -> str:
    lines = ["Service status (from container labels via the Docker SDK)", ""]
    lines.append(f"{'SERVICE':16} {'STATE':10} {'HEALTH':10} {'UPTIME':10} {'PORTS':26} CONTAINER")
    for row in r.details["services"]:
        lines.append(f"{row['service']:16} {row['state']:10} {str(row['health'] or '-'):10} "
                     f"{_fmt_uptime(row['uptime_s']):10} {str(row['ports'] or '-'):26} {row['container'] or '-'}")
    m = r.metrics
    lines += ["", f"{m['services_healthy']} of {m['services_total']} services Up (healthy)"]
    return "\n".join(lines)


def health_result(results: list[ProbeResult], wall_s: float, started_at: str) -> CheckResult:
    """03: every endpoint answers as DESIGN says, and the probes really ran concurrently."""
    ok = sum(r.ok for r in results)
    slowest = max((r.latency_s for r in results), default=0.0)
    total = sum(r.latency_s for r in results)
    dod = [Criterion.judge("health endpoints answer as specified", f"{len(results)}/{len(results)}",
                           ok, lambda n: n == len(results), samples=len(results), shown=f"{ok}/{len(results)}")]
    # Concurrency is only a claim with two probes or more: one probe is trivially "concurrent".
    if len(results) >= 2:
        dod.append(Criterion.judge("probes run concurrently (wall <= 1.5 x slowest probe)",
                                   f"<= {1.5 * slowest:.3f} s", wall_s, lambda w: w <= 1.5 * slowest + 0.005,
                                   samples=len(results), need=2, shown=f"{wall_s:.3f} s"))
    metrics = {"endpoints_total": len(results), "endpoints_ok": ok, "wall_s": round(wall_s, 4),
               "sum_latency_s": round(total, 4), "max_latency_s": round(slowest, 4),
               "concurrency_ratio": round(total / wall_s, 2) if wall_s > 0 else None}
    return CheckResult("health", started_at, wall_s, metrics, dod,
                       {"probes": [r.to_json() for r in results]})


def health_text(r: CheckResult) -> str:
    lines = ["Health endpoints (all probed concurrently over HTTP)", ""]
    for p in r.details["probes"]:
        mark = "OK  " if p["ok"] else "FAIL"
        lines.append(f"[{mark}] {p['service']:16} {str(p['status_code']):4} {p['latency_s'] * 1000:7.1f} ms  "
                     f"{p['url']}  {p['reason']}")
        lines.append(f"       body: {str(p['body'])[:160]}")
    m = r.metrics
    lines += ["", f"{m['endpoints_ok']} of {m['endpoints_total']} returned the expected answer",
              f"wall {m['wall_s']:.3f} s for {m['sum_latency_s']:.3f} s of probe latency "
              f"(concurrency x{m['concurrency_ratio']})"]
    return "\n".join(lines)


def run_status(ctx: Context, names: list[str] | None = None) -> tuple[CheckResult, str]:
    t, at = time.perf_counter(), utc_now_iso()
    stack = ctx.stack()
    services = select(stack.services, names, stack.declared)
    declared = [d for d in stack.declared if not names or d in names]
    r = status_result(declared, services, t, at)
    if not stack.services:   # nothing there at all: the environment, not a failed check
        r.details["exit_code"] = int(ExitCode.ENVIRONMENT)
    return r, status_text(r)


def status_phase(ctx: Context, names: list[str] | None = None) -> Phase:
    """`llmops status`: 01 alone, also when the stack is not up (it then says so, exit 4)."""
    return Phase("status", [Check("status", lambda _run: run_status(ctx, names))])


def verify_phase(ctx: Context, names: list[str] | None = None) -> Phase:
    """01, 02 and 03, as `llmops verify` and certify's verify phase both run them.  With
    `names` (--service) only those services, and no functional check (it needs the whole stack)."""
    if names:   # an unknown name is a usage error before the engine is asked anything
        select([], names, ctx.compose.declared())

    def selected() -> list[Service]:
        stack = ctx.stack()
        return [s for s in select(stack.services, names, stack.declared) if s.state == "running"]

    def status(_run: Run) -> tuple[CheckResult, str]:
        ctx.stack().require_up()
        return run_status(ctx, names)

    def health(run: Run) -> tuple[CheckResult, str]:
        out = run_health_check(ctx, run, selected())
        lint_gateway(run.stack, run.say)
        return out

    checks = [Check("status", status)]
    if not names:
        checks.append(Check("functional", lambda run: run_functional(ctx, run, selected())))
    checks.append(Check("health", health))
    return Phase("verify", checks)


def lint_gateway(stack: Stack, say: Say) -> None:
    """Say what the gateway's router settings predict about failover (a warning, not a verdict)."""
    try:
        router = stack.router
    except LlmopsError as e:
        say(f"gateway config warning: {e}", WARN)
        return
    for w in router.warnings if router else []:
        say(f"gateway config warning: {w}", WARN)


def run_health_check(ctx: Context, run: Run, services: list[Service]) -> tuple[CheckResult, str]:
    at = utc_now_iso()
    results, wall = run_health(services, ctx.master_key)
    for p in results:
        run.event("probe", service=p.service, url=p.url, status=p.status_code,
                  latency_s=round(p.latency_s, 4), ok=p.ok)
    r = health_result(results, wall, at)
    return r, health_text(r)


def run_functional(ctx: Context, run: Run, services: list[Service]) -> tuple[CheckResult, str]:
    """02: a real completion through the gateway (backend named by header), an embedding, a RAG query."""
    t, at = time.perf_counter(), utc_now_iso()
    by_role = {s.role: s for s in services}
    gw, emb, rag = by_role.get(Role.GATEWAY), by_role.get(Role.EMBEDDING), by_role.get(Role.RAG)
    primary = by_role.get(Role.PRIMARY)
    alias = ctx.stack().alias or ""
    details: dict[str, Any] = {"alias": alias, "gateway": gw.name if gw else None}
    comp = complete(gw.url, ctx.master_key or "", alias, hosts=ctx.stack().hosts) if gw else None
    if comp:
        run.event("request", phase="verify", status=comp.status_code, latency_s=round(comp.latency_s, 4),
                  backend=comp.backend, error=comp.error)
    details["completion"] = comp.__dict__ if comp else {"error": "no gateway service"}
    rag_hits, rag_status = 0, None
    emb_probe = probe_embedding(emb) if emb else None
    want_model, want_dim = emb.embedding_expect if emb else (None, None)
    details["embedding"] = ({**emb_probe.to_json(), "expected_model": want_model, "expected_dim": want_dim}
                            if emb_probe else {"error": "no embedding service"})
    dim = emb_probe.dim if emb_probe else None
    with httpx.Client(timeout=30) as http:
        if rag:
            try:
                resp = http.post(f"{rag.url}/query", json={"query": "How does the gateway fail over?", "top_k": 3})
                rag_status = resp.status_code
                body = resp.json()
                rag_hits = len(body.get("hits", [])) if resp.status_code == 200 else 0
                details["rag"] = {"status": resp.status_code, "hits": body.get("hits", [])[:3],
                                  "attempts": body.get("attempts")}
            except (httpx.HTTPError, ValueError) as e:
                details["rag"] = {"error": f"{e.__class__.__name__}: {e}"}
    want = primary.name if primary else f"a service with role {Role.PRIMARY}"
    backend = comp.backend if comp else None
    sent = 1 if comp else 0
    # A role the stack has no service for is not in this stack: its lines are not asked for (a
    # role that is there but not running still fails them, as not measured).
    absent = [r for r in ctx.stack().absent_roles if r in (Role.EMBEDDING, Role.RAG)]
    details["not_in_stack"] = absent
    dod = [
        Criterion.judge("completion through the gateway", "HTTP 200", comp.status_code if comp else None,
                        lambda c: c == 200, samples=sent),
        Criterion.judge("served by the primary (x-litellm-model-api-base)", want, backend, lambda b: b == want,
                        samples=sent),
    ]
    if Role.EMBEDDING not in absent:
        dod += embedding_criteria(emb_probe, want_model, want_dim)
    if Role.RAG not in absent:
        dod.append(Criterion.judge("RAG query returns hits", ">= 1", rag_hits if rag_status == 200 else None,
                                   lambda n: n >= 1, samples=1 if rag_status is not None else 0,
                                   shown=str(rag_hits)))
    metrics = {"gateway_backend": backend,
               "completion_latency_s": round(comp.latency_s, 4) if comp else None,
               "embedding_dim": dim, "embedding_model": emb_probe.served_model if emb_probe else None,
               "rag_hits": rag_hits}
    r = CheckResult("functional", at, time.perf_counter() - t, metrics, dod, details)
    text = "\n".join([
        "Functional check: real requests through the stack", "",
        f"1. POST /v1/chat/completions via {gw.name} (alias {alias}): HTTP {comp.status_code} "
        f"in {comp.latency_s:.3f} s, served by {backend} (model id {comp.model_id})" if comp and gw else "1. no gateway",
        f"   reply: {(comp.text or comp.error or '')[:100]!r}" if comp else "",
        f"2. POST /v1/embeddings via {emb.name}: model {emb_probe.served_model}, dim {dim}, "
        f"norm {emb_probe.norm}" + (f" ({emb_probe.error})" if emb_probe.error else "")
        if emb and emb_probe else "2. no embedding service",
        f"3. POST /query via {rag.name if rag else 'no rag service'}: HTTP {rag_status}, {rag_hits} hits",
        f"not in this stack: {', '.join(absent)}" if absent else "",
    ])
    return r, text
