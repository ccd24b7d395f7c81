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

from ..rounding import rounded
from ..context import Context
from ..embedcheck import EmbeddingProbe, embedding_criteria, probe_embedding
from ..errors import EnvironmentProblem
from ..evidence import CheckResult, Criterion, utc_now_iso
from ..runner import Run
from ..stack import Role, Service
from .common import FaultFrame, check_mode, check_range, preflight
from .restore import wait_http_ok

REFERENCE_HEALTH_S = 4.0
HEALTH_LIMIT_S = 0.5
RECONNECT_LIMIT_S = 2.0
# rag's /health may lag the truth by the lag its body declares; never grant more than this.
MAX_HEALTH_LAG_S = 1.5
MIN_HEALTH_SAMPLES = 3
MIN_SAFETY_POINTS = 100
WRITE_BATCH = 20
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
        check_range("--points", self.safety_points, MIN_SAFETY_POINTS, 10000)


def collection_size(qdrant: Service, collection: str, timeout: float = 5.0) -> int | None:
    """The vector size the collection was created with (Qdrant's GET /collections/NAME)."""
    try:
        r = httpx.get(f"{qdrant.url}/collections/{collection}", timeout=timeout)
        size = r.json()["result"]["config"]["params"]["vectors"]["size"] if r.status_code == 200 else None
    except (httpx.HTTPError, ValueError, KeyError, TypeError):
        return None
    return size if isinstance(size, int) else None


def embedding_baseline(emb: Service | None, qdrant: Service, collection: str) -> tuple[EmbeddingProbe | None,
                                                                                       list[Criterion]]:
    """The embedding server rag depends on: the model and dimension its labels name, unit vectors,
    and a collection whose vectors have that dimension (else every query would be refused)."""
    probe = probe_embedding(emb) if emb else None
    want_model, want_dim = emb.embedding_expect if emb else (None, None)
    size = collection_size(qdrant, collection)
    lines = embedding_criteria(probe, want_model, want_dim)
    lines.append(Criterion.judge(f"collection {collection} vector size == embedding dimension",
                                 str(probe.dim if probe else None), size if probe and probe.dim else None,
                                 lambda v: v == probe.dim if probe else False,
                                 samples=1 if size is not None else 0))
    return probe, lines


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


def run_qdrant(ctx: Context, run: Run, o: QdrantOptions) -> tuple[CheckResult, str]:
    o.validate()
    say = run.say
    started_at, t_wall = utc_now_iso(), time.perf_counter()
    stack = ctx.stack()
    qdrant, rag = stack.role(Role.VECTORDB), stack.role(Role.RAG)
    if qdrant is None:
        raise EnvironmentProblem(f"the stack has no {Role.VECTORDB} service (label llmops.role={Role.VECTORDB})")
    if rag is None and Role.RAG in stack.absent_roles:
        return run_vectordb_alone(ctx, run, o, qdrant)
    if rag is None:
        raise EnvironmentProblem(f"the stack has no {Role.RAG} service")
    preflight(ctx, qdrant.name)
    baseline = httpx.get(f"{rag.url}/health", timeout=5).json()
    collection = baseline.get("collection", "docs")
    policy = baseline.get("retry_policy") or {}
    deadline_s = float(policy.get("deadline_s", 3.0))
    q0 = asyncio.run(_with_client(lambda c: _query(c, rag)))
    emb_probe, emb_lines = embedding_baseline(stack.role(Role.EMBEDDING), qdrant, collection)
    say(f"embedding: {emb_probe.served_model if emb_probe else 'no embedding service'}, "
        f"dim {emb_probe.dim if emb_probe else None}")
    points_before = count_points(qdrant, collection)
    say(f"baseline: query HTTP {q0['status_code']} with {q0['hits']} hits; {points_before} points in {collection}")
    health: list[dict[str, Any]] = []
    queries: list[dict[str, Any]] = []
    marks: dict[str, float | None] = {"ready": None, "rag_ok": None, "in_effect": None}

    def rec_health(h: dict[str, Any], phase: str) -> None:
        health.append({**h, "phase": phase})
        run.event("rag_health", t=run.to_run_time(h["t"]), phase=phase, latency_s=round(h["latency_s"], 4),
                  qdrant=h["qdrant"], status_code=h["status_code"], breaker=h.get("breaker"))

    async def outage(f: FaultFrame) -> None:
        async with httpx.AsyncClient() as client:
            say(f"fault: docker {o.mode} {qdrant.name} for {o.outage_s:g} s")
            await asyncio.to_thread(f.inject)
            marks["in_effect"] = time.monotonic()   # docker has returned: Qdrant is away from here
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
            # rag's health turns true within its declared lag of Qdrant's; poll it tightly
            stop_at = time.monotonic() + 30
            while time.monotonic() < stop_at:
                h = await _health(client, rag)
                rec_health(h, "recovery")
                if h["qdrant"] is True:
                    marks["rag_ok"] = h["t"] + h["latency_s"]
                    break
                await asyncio.sleep(0.02)

    frame = FaultFrame(ctx, run, qdrant, o.mode, restore=o.restore, phase="qdrant")
    frame.apply(lambda f: asyncio.run(outage(f)))
    q1 = asyncio.run(_with_client(lambda c: _query(c, rag))) if frame.restored else None
    points_after = count_points(qdrant, collection) if frame.restored else None
    safety = data_safety(ctx, run, qdrant, o.safety_points) if (o.data_safety and frame.restored) else None
    if not o.data_safety:
        frame.notes.append(f"data safety not run (no SIGKILL of {qdrant.name}, no {DURABILITY_COLLECTION} "
                           "collection): pass --data-safety to run it")

    out_h = [h for h in health if h["phase"] == "outage"]
    # Every outage sample counts for latency, those inside the declared lag included.
    deg = max((h["latency_s"] for h in out_h), default=None)
    lag_s = health_lag_s(baseline)
    truth = health_truth(out_h, marks["in_effect"], lag_s)
    reconnect = (marks["rag_ok"] - marks["ready"]) if marks["rag_ok"] and marks["ready"] else None
    metrics = {
        "degraded_health_latency_s": rounded(deg, 4),
        "degraded_health_p50_s": rounded(statistics.median([h["latency_s"] for h in out_h]), 4) if out_h else None,
        "outage_query_status": queries[0]["status_code"] if queries else None,
        "outage_query_max_latency_s": rounded(max((q["latency_s"] for q in queries), default=None), 4),
        "retry_attempts_seen": [q["attempts"] for q in queries],
        "reconnect_time_s": rounded(reconnect, 4),
        "health_detect_s": truth["detect_s"],
        "health_samples_judged": truth["judged"],
        "points_before": points_before,
        "points_after": points_after,
        "restored": frame.restored,
    }
    if safety:
        metrics.update({k: safety[k] for k in ("requested_writes", "acked_writes", "found_after_kill", "lost_writes")})
    nq = len(queries)
    dod = [
        *emb_lines,
        Criterion.judge("degraded_health_latency_s (rag /health while Qdrant is down)",
                        f"< {HEALTH_LIMIT_S} s (reference: {REFERENCE_HEALTH_S:g} s)", metrics["degraded_health_latency_s"],
                        lambda v: v < HEALTH_LIMIT_S, samples=len(out_h), unit=" s"),
        truth_criterion(truth, lag_s),
        Criterion.judge("outage_query_status with Retry-After", "503 + Retry-After", queries,
                        lambda qs: all(q["status_code"] == 503 and q["retry_after"] for q in qs), samples=nq,
                        shown=", ".join(f"{q['status_code']}{'+RA' if q['retry_after'] else ''}" for q in queries)),
        Criterion.judge("outage queries end within the rag deadline", f"<= {deadline_s + 0.5:g} s",
                        metrics["outage_query_max_latency_s"], lambda v: v <= deadline_s + 0.5, samples=nq, unit=" s"),
        Criterion.judge("reconnect_time_s (Qdrant /readyz OK -> rag qdrant:true)", f"< {RECONNECT_LIMIT_S} s",
                        metrics["reconnect_time_s"], lambda v: v < RECONNECT_LIMIT_S,
                        samples=1 if reconnect is not None else 0, unit=" s"),
        Criterion.judge("points_after == points_before", str(points_before),
                        points_after if points_before is not None else None, lambda v: v == points_before,
                        samples=1, shown=str(points_after)),
        Criterion.judge("query after recovery returns hits", ">= 1",
                        q1["hits"] if q1 and q1["status_code"] == 200 else None, lambda v: v >= 1,
                        samples=1 if q1 else 0, shown=str(q1["hits"] if q1 else None)),
        Criterion.judge("restored (Qdrant back, stack healthy)", "true", frame.restored, lambda v: v is True,
                        samples=1),
    ]
    if safety:
        dod += safety_criteria(safety)
    details = {"mode": o.mode, "outage_s": o.outage_s, "collection": collection, "retry_policy": policy,
               "service": qdrant.name, "baseline": {"health": baseline, "query": q0,
                                                    "embedding": emb_probe.to_json() if emb_probe else None},
               "queries": queries, "after": q1,
               "health_samples": len(out_h), "health_truth": truth, "data_safety": safety, "restored": frame.restored,
               "restore_action": frame.restore_how, "notes": frame.notes,
               "marks": {"qdrant_ready_after_restore_s": rounded(marks["ready"] - frame.t_restore, 4)
                         if marks["ready"] and frame.t_restore else None}}
    r = CheckResult("qdrant", started_at, time.perf_counter() - t_wall, metrics, dod, details)
    return r, qdrant_text(r)


async def _with_client(fn: Callable[[httpx.AsyncClient], Any]) -> Any:
    async with httpx.AsyncClient() as c:
        return await fn(c)


def write_points(base: str, n: int) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Write n points in batches with wait=true: the points whose batch was acknowledged
    (id -> payload), and why any batch was not."""
    acked: dict[str, dict[str, Any]] = {}
    errors: list[str] = []
    with httpx.Client(timeout=30) as c:
        for start in range(0, n, WRITE_BATCH):
            pts = [{"id": str(uuid.uuid4()), "vector": [1.0, float(i % 7), float(i % 11), 0.5], "payload": {"i": i}}
                   for i in range(start, min(n, start + WRITE_BATCH))]
            try:
                r = c.put(f"{base}/points", params={"wait": "true"}, json={"points": pts})
                done = r.status_code == 200 and (r.json().get("result") or {}).get("status") == "completed"
                why = f"HTTP {r.status_code}: {r.text[:120]}"
            except (httpx.HTTPError, ValueError) as e:
                done, why = False, f"{e.__class__.__name__}: {e}"[:160]
            if done:
                acked.update({p["id"]: p["payload"] for p in pts})
            else:
                errors.append(f"points {start}..{start + len(pts) - 1}: {why}")
    return acked, errors


def read_back(base: str, ids: list[str]) -> tuple[dict[str, Any] | None, str | None]:
    """The points Qdrant returns for these IDs (id -> payload), by ID, as Qdrant's REST API reads
    them (`POST /collections/{name}/points`); None and the reason when the read fails."""
    try:
        r = httpx.post(f"{base}/points", json={"ids": ids, "with_payload": True, "with_vector": False}, timeout=30)
        if r.status_code != 200:
            return None, f"HTTP {r.status_code}: {r.text[:160]}"
        return {str(p["id"]): p.get("payload") for p in r.json()["result"]}, None
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as e:
        return None, f"{e.__class__.__name__}: {e}"[:200]


def compare_writes(requested: int, acked: dict[str, dict[str, Any]], found: dict[str, Any] | None,
                   read_error: str | None = None, write_errors: list[str] | None = None) -> dict[str, Any]:
    """Acknowledged IDs against what was read back by ID: which are missing, which came back
    changed. Counts alone would let other points stand in for lost ones."""
    missing = sorted(set(acked) - set(found or {})) if found is not None else sorted(acked)
    changed = sorted(i for i in acked if found is not None and i in found and found[i] != acked[i])
    return {
        "requested_writes": requested,
        "acked_writes": len(acked),
        "write_errors": (write_errors or [])[:5],
        "read_back": found is not None,
        "read_error": read_error,
        "found_after_kill": None if found is None else len(acked) - len(missing),
        "lost_writes": len(missing),
        "changed_writes": len(changed),
        "lost_ids": missing[:5],
        "changed_ids": changed[:5],
    }


def safety_criteria(s: dict[str, Any]) -> list[Criterion]:
    """The data-safety DoD lines. Each fails on its own: too few writes, writes not all
    acknowledged, a failed read-back, a missing or changed acknowledged point."""
    n, acked = s["requested_writes"], s["acked_writes"]
    if not s["read_back"]:
        actual = f"read-back failed: {s['read_error']}"
    else:
        actual = f"{s['found_after_kill']} of {acked} found, {s['lost_writes']} missing, {s['changed_writes']} changed"
        if s["lost_ids"]:
            actual += f" (missing e.g. {', '.join(s['lost_ids'][:2])})"
    return [
        Criterion.judge(f"all writes acknowledged (n >= {MIN_SAFETY_POINTS})", f"{n} of {n}, n >= {MIN_SAFETY_POINTS}",
                        acked, lambda a: a == n, samples=n, need=MIN_SAFETY_POINTS, shown=f"{acked} of {n}"),
        Criterion.judge("acknowledged writes survive SIGKILL (read back by ID)", f"{acked} of {acked} found, unchanged",
                        s["lost_writes"] + s["changed_writes"] if s["read_back"] else None, lambda bad: bad == 0,
                        samples=acked, shown=actual),
    ]


def health_lag_s(rag_health: dict[str, Any]) -> float:
    """How far rag's /health may lag Qdrant's real state, as its body declares, capped."""
    declared = (rag_health.get("health_policy") or {}).get("max_lag_s")
    if not isinstance(declared, (int, float)) or isinstance(declared, bool) or not declared >= 0:
        return 0.0
    return min(float(declared), MAX_HEALTH_LAG_S)


def health_truth(samples: list[dict[str, Any]], t_in_effect: float | None, lag_s: float) -> dict[str, Any]:
    """Judge rag's /health samples taken while Qdrant was away: every sample sent later than
    `lag_s` after the fault took effect must say qdrant:false, and there must be enough of them."""
    judged = [h for h in samples if t_in_effect is not None and h["t"] >= t_in_effect + lag_s]
    wrong = [h for h in judged if h["qdrant"] is not False]
    first_false = next((h for h in samples if h["qdrant"] is False), None)
    detect = (first_false["t"] + first_false["latency_s"] - t_in_effect) if first_false and t_in_effect else None
    return {"samples": len(samples), "judged": len(judged), "wrong": len(wrong),
            "wrong_readings": [h["qdrant"] for h in wrong][:5], "detect_s": rounded(detect, 4),
            "ok": len(judged) >= MIN_HEALTH_SAMPLES and not wrong}


def truth_criterion(truth: dict[str, Any], lag_s: float) -> Criterion:
    actual = (f"{truth['judged'] - truth['wrong']} of {truth['judged']} false"
              + (f" ({truth['samples'] - truth['judged']} earlier samples inside the lag not judged)"
                 if truth["samples"] > truth["judged"] else ""))
    return Criterion.judge(f"rag /health tells the truth during the outage (samples after its {lag_s:g} s lag)",
                           f"qdrant: false in all, >= {MIN_HEALTH_SAMPLES} samples", truth["wrong"],
                           lambda w: w == 0, samples=truth["judged"], need=MIN_HEALTH_SAMPLES, shown=actual)


def data_safety(ctx: Context, run: Run, qdrant: Service, n: int) -> dict[str, Any]:
    """Acknowledged writes (wait=true) must survive a SIGKILL of whatever Qdrant the profile runs:
    each acknowledged ID is read back by ID after the restart."""
    base = f"{qdrant.url}/collections/{DURABILITY_COLLECTION}"
    with httpx.Client(timeout=30) as c:
        c.delete(base)
        c.put(base, json={"vectors": {"size": 4, "distance": "Cosine"}}).raise_for_status()
    acked, write_errors = write_points(base, n)
    run.say(f"data safety: {len(acked)} of {n} points acknowledged; docker kill {qdrant.name}")
    frame = FaultFrame(ctx, run, qdrant, "kill", phase="qdrant-durability")

    def body(f: FaultFrame) -> None:
        f.inject()
        f.undo()
        wait_http_ok(f"{qdrant.url}/readyz", 60.0)

    frame.apply(body)
    found, read_error = read_back(base, list(acked)) if acked else ({}, None)
    with httpx.Client(timeout=10) as c:
        c.delete(base)
    return {**compare_writes(n, acked, found, read_error, write_errors),
            "qdrant_image": ctx.client.containers.get(qdrant.container_id).attrs["Config"]["Image"]}


def all_points(qdrant: Service) -> dict[str, int | None]:
    """Every collection's exact point count (a stack without rag names no collection of its own)."""
    try:
        r = httpx.get(f"{qdrant.url}/collections", timeout=5.0)
        names = [c["name"] for c in r.json()["result"]["collections"]] if r.status_code == 200 else []
    except (httpx.HTTPError, ValueError, KeyError, TypeError):
        return {}
    return {n: count_points(qdrant, n) for n in sorted(names) if n != DURABILITY_COLLECTION}


def run_vectordb_alone(ctx: Context, run: Run, o: QdrantOptions,
                       qdrant: Service) -> tuple[CheckResult, str]:
    """chaos qdrant on a stack with no rag service: the vector DB's own outage, restore and data
    (every collection's points, and the SIGKILL data-safety step when asked); rag's lines are not
    in this stack."""
    started_at, t_wall = utc_now_iso(), time.perf_counter()
    preflight(ctx, qdrant.name)
    before = all_points(qdrant)
    run.say(f"baseline (no rag in this stack): {len(before)} collection(s), {sum(v or 0 for v in before.values())} points")
    marks: dict[str, float | None] = {"ready": None}

    def outage(f: FaultFrame) -> None:
        run.say(f"fault: docker {o.mode} {qdrant.name} for {o.outage_s:g} s")
        f.inject()
        time.sleep(o.outage_s)
        if o.restore:
            run.say(f"restore: {qdrant.name}")
            f.undo()
            marks["ready"] = wait_http_ok(f"{qdrant.url}/readyz", 60.0, None, 0.02)

    frame = FaultFrame(ctx, run, qdrant, o.mode, restore=o.restore, phase="qdrant")
    frame.apply(outage)
    after = all_points(qdrant) if frame.restored else {}
    safety = data_safety(ctx, run, qdrant, o.safety_points) if (o.data_safety and frame.restored) else None
    if not o.data_safety:
        frame.notes.append(f"data safety not run (no SIGKILL of {qdrant.name}, no {DURABILITY_COLLECTION} "
                           "collection): pass --data-safety to run it")
    ready_s = (marks["ready"] - frame.t_restore) if marks["ready"] and frame.t_restore else None
    dod = [
        Criterion.judge("Qdrant /readyz OK after restore", "< 60 s", ready_s, lambda v: v < 60.0,
                        samples=1 if frame.t_restore else 0, unit=" s", shown=f"{rounded(ready_s, 4)} s"),
        Criterion.judge("restored (Qdrant back, stack healthy)", "true", frame.restored, lambda v: v is True,
                        samples=1),
    ]
    # The data that proves nothing was lost: the collections there were, and/or the data-safety
    # step's own.  An empty vector DB without data safety has none: that line fails, unmeasured.
    if before or not safety:
        dod.insert(1, Criterion.judge("every collection's points after == before", str(before),
                                      after if before else None, lambda v: v == before, samples=len(before),
                                      shown=str(after)))
    if safety:
        dod += safety_criteria(safety)
    metrics = {"points_before": sum(v or 0 for v in before.values()), "restored": frame.restored,
               "qdrant_ready_after_restore_s": rounded(ready_s, 4)}
    if safety:
        metrics.update({k: safety[k] for k in ("requested_writes", "acked_writes", "found_after_kill", "lost_writes")})
    details = {"mode": o.mode, "outage_s": o.outage_s, "service": qdrant.name, "not_in_stack": [Role.RAG],
               "points_before": before, "points_after": after, "data_safety": safety, "restored": frame.restored,
               "restore_action": frame.restore_how, "notes": frame.notes}
    r = CheckResult("qdrant", started_at, time.perf_counter() - t_wall, metrics, dod, details)
    text = "\n".join([f"Vector DB outage test (no rag in this stack): docker {o.mode} {qdrant.name} for {o.outage_s:g} s",
                      f"  points before: {before}", f"  points after:  {after}",
                      f"  /readyz OK {rounded(ready_s, 4)} s after the restore ({frame.restore_how or 'none'})",
                      *(f"NOTE: {n}" for n in frame.notes)])
    return r, text


def qdrant_text(r: CheckResult) -> str:
    m, d = r.metrics, r.details
    b = d["baseline"]
    lines = [
        f"Qdrant outage test: rag's retries, health and reconnect; fault mode `{d['mode']}` for {d['outage_s']:g} s",
        "",
        "Scenario:",
        "  1. Pre-flight: every service Up (healthy).",
        f"  2. Baseline: rag /health qdrant={b['health'].get('qdrant')}; query HTTP {b['query']['status_code']} "
        f"with {b['query']['hits']} hits; {m['points_before']} points in `{d['collection']}`; "
        f"embedding {(b.get('embedding') or {}).get('served_model')} at dim {(b.get('embedding') or {}).get('dim')}.",
        f"  3. Fault: docker {d['mode']} {d.get('service')}.",
        f"  4. Outage: {d['health_samples']} rag /health samples, slowest {m['degraded_health_latency_s']} s "
        f"(reference: 4 s), first qdrant:false {m.get('health_detect_s')} s after the fault; "
        f"{len(d['queries'])} queries, statuses "
        f"{', '.join(str(q['status_code']) for q in d['queries'])}, Retry-After "
        f"{', '.join(str(q['retry_after']) for q in d['queries'])}, attempts {m['retry_attempts_seen']}.",
        f"  5. Restore ({d['restore_action'] or 'none'}); Qdrant /readyz OK {d['marks']['qdrant_ready_after_restore_s']} s later.",
        f"  6. Reconnect: rag reported qdrant:true {m['reconnect_time_s']} s after /readyz turned OK.",
        f"  7. After: query HTTP {(d['after'] or {}).get('status_code')} with {(d['after'] or {}).get('hits')} hits; "
        f"{m['points_after']} points.",
    ]
    if d["data_safety"]:
        s = d["data_safety"]
        lines.append(f"  8. Data safety ({s['qdrant_image']}): {s['acked_writes']} of {s['requested_writes']} writes "
                     f"acknowledged, SIGKILL, restart, read back by ID: {s['found_after_kill']} found, "
                     f"{s['lost_writes']} lost, {s['changed_writes']} changed.")
    rp = d["retry_policy"]
    lines += ["", f"rag retry policy: deadline {rp.get('deadline_s')} s, max {rp.get('max_attempts')} attempts, "
              f"backoff {rp.get('backoff_initial_s')}..{rp.get('backoff_max_s')} s with jitter, "
              f"per-attempt timeout {rp.get('per_attempt_timeout_s')} s"]
    for n in d["notes"]:
        lines.append(f"NOTE: {n}")
    return "\n".join(lines)
