"""`llmops chaos qdrant`: take Qdrant away and prove rag degrades cleanly, heals fast, loses nothing."""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from ..context import Context
from ..errors import EnvironmentProblem
from ..evidence import CheckResult, Criterion, utc_now_iso
from ..stack import Role, Service
from .common import FaultFrame, check_mode, check_range, preflight
from .restore import wait_http_ok

REFERENCE_HEALTH_S = 4.0
HEALTH_LIMIT_S = 0.5
RECONNECT_LIMIT_S = 2.0
QUERY = "How does the rag service handle a Qdrant outage?"
DURABILITY_COLLECTION = "llmops_durability"


@dataclass
class QdrantOptions:
    mode: str = "stop"
    outage_s: float = 6.0
    restore: bool = True
    health_interval_s: float = 0.2
    query_interval_s: float = 1.0
    data_safety: bool = True
    safety_points: int = 200

    def validate(self) -> None:
        check_mode(self.mode)
        check_range("--outage", self.outage_s, 1, 300)
        check_range("--points", self.safety_points, 1, 10000)


def count_points(qdrant: Service, collection: str, timeout: float = 5.0) -> int | None:
    try:
        r = httpx.post(f"{qdrant.url}/collections/{collection}/points/count", json={"exact": True}, timeout=timeout)
    except httpx.HTTPError:
        return None
    return r.json()["result"]["count"] if r.status_code == 200 else None


async def _health(client: httpx.AsyncClient, rag: Service) -> dict[str, Any]:
    t = time.monotonic()
    try:
        r = await client.get(f"{rag.url}/health", timeout=5.0)
        body = r.json()
        return {"t": t, "latency_s": time.monotonic() - t, "status_code": r.status_code,
                "qdrant": body.get("qdrant"), "breaker": (body.get("breaker") or {}).get("state")}
    except (httpx.HTTPError, ValueError) as e:
        return {"t": t, "latency_s": time.monotonic() - t, "status_code": None, "qdrant": None,
                "error": f"{e.__class__.__name__}"}


async def _query(client: httpx.AsyncClient, rag: Service) -> dict[str, Any]:
    t = time.monotonic()
    try:
        r = await client.post(f"{rag.url}/query", json={"query": QUERY, "top_k": 3}, timeout=30.0)
        body = r.json()
        return {"t": t, "latency_s": time.monotonic() - t, "status_code": r.status_code,
                "retry_after": r.headers.get("retry-after"), "hits": len(body.get("hits") or []),
                "attempts": body.get("attempts"), "error": body.get("error")}
    except (httpx.HTTPError, ValueError) as e:
        return {"t": t, "latency_s": time.monotonic() - t, "status_code": None, "retry_after": None,
                "hits": 0, "attempts": None, "error": f"{e.__class__.__name__}: {e}"[:200]}


def run_qdrant(ctx: Context, o: QdrantOptions, say: Callable[[str], None]) -> tuple[CheckResult, str]:
    o.validate()
    started_at, t_wall = utc_now_iso(), time.perf_counter()
    stack = ctx.stack()
    qdrant, rag = stack.role(Role.VECTORDB), stack.role(Role.RAG)
    if qdrant is None or rag is None:
        raise EnvironmentProblem(f"the stack has no {Role.VECTORDB} or {Role.RAG} service")
    preflight(ctx, qdrant.name)
    run = ctx.open_run()
    baseline = httpx.get(f"{rag.url}/health", timeout=5).json()
    collection = baseline.get("collection", "docs")
    policy = baseline.get("retry_policy") or {}
    deadline_s = float(policy.get("deadline_s", 3.0))
    q0 = asyncio.run(_with_client(lambda c: _query(c, rag)))
    points_before = count_points(qdrant, collection)
    say(f"baseline: query HTTP {q0['status_code']} with {q0['hits']} hits; {points_before} points in {collection}")
    health: list[dict[str, Any]] = []
    queries: list[dict[str, Any]] = []
    marks: dict[str, float | None] = {"ready": None, "rag_ok": None}

    def rec_health(h: dict[str, Any], phase: str) -> None:
        health.append({**h, "phase": phase})
        run.event("rag_health", t=run.to_run_time(h["t"]), phase=phase, latency_s=round(h["latency_s"], 4),
                  qdrant=h["qdrant"], status_code=h["status_code"], breaker=h.get("breaker"))

    async def outage(f: FaultFrame) -> None:
        async with httpx.AsyncClient() as client:
            say(f"fault: docker {o.mode} {qdrant.name} for {o.outage_s:g} s")
            await asyncio.to_thread(f.inject)
            end = time.monotonic() + o.outage_s

            async def sample_health() -> None:
                while time.monotonic() < end:
                    rec_health(await _health(client, rag), "outage")
                    await asyncio.sleep(o.health_interval_s)

            async def send_queries() -> None:
                while time.monotonic() < end:
                    q = await _query(client, rag)
                    queries.append(q)
                    run.event("rag_query", t=run.to_run_time(q["t"]), phase="outage", latency_s=round(q["latency_s"], 4),
                              status=q["status_code"], retry_after=q["retry_after"], attempts=q["attempts"])
                    await asyncio.sleep(max(0.0, o.query_interval_s - q["latency_s"]))

            await asyncio.gather(sample_health(), send_queries())
            if not o.restore:
                return
            say(f"restore: {qdrant.name}")
            await asyncio.to_thread(f.undo)
            marks["ready"] = await asyncio.to_thread(wait_http_ok, f"{qdrant.url}/readyz", 60.0, None, 0.02)
            # rag's health probes Qdrant itself on every call, so poll it tightly
            stop_at = time.monotonic() + 30
            while time.monotonic() < stop_at:
                h = await _health(client, rag)
                rec_health(h, "recovery")
                if h["qdrant"] is True:
                    marks["rag_ok"] = h["t"] + h["latency_s"]
                    break
                await asyncio.sleep(0.02)

    frame = FaultFrame(ctx, qdrant, o.mode, restore=o.restore, phase="qdrant")
    frame.run(lambda f: asyncio.run(outage(f)), say)
    q1 = asyncio.run(_with_client(lambda c: _query(c, rag))) if frame.restored else None
    points_after = count_points(qdrant, collection) if frame.restored else None
    safety = data_safety(ctx, qdrant, o.safety_points, say) if (o.data_safety and frame.restored) else None

    out_h = [h for h in health if h["phase"] == "outage"]
    deg = max((h["latency_s"] for h in out_h), default=None)
    truthful = bool(out_h) and all(h["qdrant"] is False for h in out_h[1:])   # the first may race the fault
    reconnect = (marks["rag_ok"] - marks["ready"]) if marks["rag_ok"] and marks["ready"] else None
    metrics = {
        "degraded_health_latency_s": _r(deg),
        "degraded_health_p50_s": _r(statistics.median([h["latency_s"] for h in out_h])) if out_h else None,
        "outage_query_status": queries[0]["status_code"] if queries else None,
        "outage_query_max_latency_s": _r(max((q["latency_s"] for q in queries), default=None)),
        "retry_attempts_seen": [q["attempts"] for q in queries],
        "reconnect_time_s": _r(reconnect),
        "points_before": points_before,
        "points_after": points_after,
        "restored": frame.restored,
    }
    if safety:
        metrics.update({k: safety[k] for k in ("acked_writes", "found_after_kill", "lost_writes")})
    dod = [
        Criterion("degraded_health_latency_s (rag /health while Qdrant is down)",
                  f"< {HEALTH_LIMIT_S} s (reference: {REFERENCE_HEALTH_S:g} s)", f"{metrics['degraded_health_latency_s']} s",
                  deg is not None and deg < HEALTH_LIMIT_S),
        Criterion("rag /health tells the truth during the outage", "qdrant: false",
                  "false" if truthful else "not always false", truthful),
        Criterion("outage_query_status with Retry-After", "503 + Retry-After",
                  ", ".join(f"{q['status_code']}{'+RA' if q['retry_after'] else ''}" for q in queries) or "no queries",
                  bool(queries) and all(q["status_code"] == 503 and q["retry_after"] for q in queries)),
        Criterion("outage queries end within the rag deadline", f"<= {deadline_s + 0.5:g} s",
                  f"{metrics['outage_query_max_latency_s']} s",
                  bool(queries) and max(q["latency_s"] for q in queries) <= deadline_s + 0.5),
        Criterion("reconnect_time_s (Qdrant /readyz OK -> rag qdrant:true)", f"< {RECONNECT_LIMIT_S} s",
                  f"{metrics['reconnect_time_s']} s", reconnect is not None and reconnect < RECONNECT_LIMIT_S),
        Criterion("points_after == points_before", str(points_before), str(points_after),
                  points_before is not None and points_after == points_before),
        Criterion("query after recovery returns hits", ">= 1", str(q1["hits"] if q1 else None),
                  bool(q1 and q1["status_code"] == 200 and q1["hits"] >= 1)),
        Criterion("restored (Qdrant back, stack healthy)", "true", str(frame.restored).lower(), frame.restored),
    ]
    if safety:
        dod.append(Criterion("acknowledged writes survive SIGKILL", f"{safety['acked_writes']} found",
                             f"{safety['found_after_kill']} found", safety["lost_writes"] == 0))
    details = {"mode": o.mode, "outage_s": o.outage_s, "collection": collection, "retry_policy": policy,
               "service": qdrant.name, "baseline": {"health": baseline, "query": q0}, "queries": queries, "after": q1,
               "health_samples": len(out_h), "data_safety": safety, "restored": frame.restored,
               "restore_action": frame.restore_how, "notes": frame.notes,
               "marks": {"qdrant_ready_after_restore_s": _r(marks["ready"] - frame.t_restore)
                         if marks["ready"] and frame.t_restore else None}}
    r = CheckResult("qdrant", CheckResult.status_from(dod), started_at, time.perf_counter() - t_wall, metrics, dod, details)
    return r, qdrant_text(r)


async def _with_client(fn: Callable[[httpx.AsyncClient], Any]) -> Any:
    async with httpx.AsyncClient() as c:
        return await fn(c)


def data_safety(ctx: Context, qdrant: Service, n: int, say: Callable[[str], None]) -> dict[str, Any]:
    """Acknowledged writes (wait=true) must survive a SIGKILL of whatever Qdrant the profile runs."""
    base = f"{qdrant.url}/collections/{DURABILITY_COLLECTION}"
    with httpx.Client(timeout=30) as c:
        c.delete(base)
        c.put(base, json={"vectors": {"size": 4, "distance": "Cosine"}}).raise_for_status()
        pts = [{"id": str(uuid.uuid4()), "vector": [1.0, float(i % 7), float(i % 11), 0.5], "payload": {"i": i}}
               for i in range(n)]
        r = c.put(f"{base}/points", params={"wait": "true"}, json={"points": pts})
        acked = n if r.status_code == 200 and r.json().get("result", {}).get("status") == "completed" else 0
    say(f"data safety: {acked} points acknowledged; docker kill {qdrant.name}")
    frame = FaultFrame(ctx, qdrant, "kill", phase="qdrant-durability")

    def body(f: FaultFrame) -> None:
        f.inject()
        f.undo()
        wait_http_ok(f"{qdrant.url}/readyz", 60.0)

    frame.run(body, say)
    found = count_points(qdrant, DURABILITY_COLLECTION)
    with httpx.Client(timeout=10) as c:
        c.delete(base)
    return {"acked_writes": acked, "found_after_kill": found, "lost_writes": acked - (found or 0),
            "qdrant_image": ctx.client.containers.get(qdrant.container_id).attrs["Config"]["Image"]}


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 4)


def qdrant_text(r: CheckResult) -> str:
    m, d = r.metrics, r.details
    b = d["baseline"]
    lines = [
        f"Qdrant outage test: rag's retries, health and reconnect; fault mode `{d['mode']}` for {d['outage_s']:g} s",
        "",
        "Scenario:",
        "  1. Pre-flight: every service Up (healthy).",
        f"  2. Baseline: rag /health qdrant={b['health'].get('qdrant')}; query HTTP {b['query']['status_code']} "
        f"with {b['query']['hits']} hits; {m['points_before']} points in `{d['collection']}`.",
        f"  3. Fault: docker {d['mode']} {d.get('service')}.",
        f"  4. Outage: {d['health_samples']} rag /health samples, slowest {m['degraded_health_latency_s']} s "
        f"(reference: 4 s); {len(d['queries'])} queries, statuses "
        f"{', '.join(str(q['status_code']) for q in d['queries'])}, Retry-After "
        f"{', '.join(str(q['retry_after']) for q in d['queries'])}, attempts {m['retry_attempts_seen']}.",
        f"  5. Restore ({d['restore_action'] or 'none'}); Qdrant /readyz OK {d['marks']['qdrant_ready_after_restore_s']} s later.",
        f"  6. Reconnect: rag reported qdrant:true {m['reconnect_time_s']} s after /readyz turned OK.",
        f"  7. After: query HTTP {(d['after'] or {}).get('status_code')} with {(d['after'] or {}).get('hits')} hits; "
        f"{m['points_after']} points.",
    ]
    if d["data_safety"]:
        s = d["data_safety"]
        lines.append(f"  8. Data safety ({s['qdrant_image']}): {s['acked_writes']} acknowledged writes, "
                     f"SIGKILL, restart: {s['found_after_kill']} found, {s['lost_writes']} lost.")
    rp = d["retry_policy"]
    lines += ["", f"rag retry policy: deadline {rp.get('deadline_s')} s, max {rp.get('max_attempts')} attempts, "
              f"backoff {rp.get('backoff_initial_s')}..{rp.get('backoff_max_s')} s with jitter, "
              f"per-attempt timeout {rp.get('per_attempt_timeout_s')} s"]
    for n in d["notes"]:
        lines.append(f"NOTE: {n}")
    return "\n".join(lines)
