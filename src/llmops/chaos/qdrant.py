"""`llmops chaos qdrant`: take Qdrant away and prove rag degrades cleanly, heals fast, loses nothing.

`run_qdrant` in steps: the pre-flight and baseline, the outage (under the fault frame), the
recovery, then the evidence.  The point counts and the data-safety step are chaos/qdrant_safety.py's;
a stack with no rag service is handed to chaos/qdrant_alone.py."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field, replace
from typing import TypeVar

import httpx

from ..rounding import rounded
from ..context import Context
from ..embedcheck import EmbeddingProbe, embedding_criteria, probe_embedding
from ..errors import EnvironmentProblem
from ..evidence import CheckResult, Criterion, JsonObject, utc_now_iso
from ..runner import Run
from ..stack import Role, Service
from .common import FaultFrame, preflight
from .dod_common import restored_line
from .qdrant_alone import run_vectordb_alone
from .qdrant_options import QdrantOptions  # noqa: F401 - the CLI and certify take it from here
from .qdrant_safety import (DURABILITY_COLLECTION, MIN_SAFETY_POINTS, DataSafety,  # noqa: F401 - the CLI
                            count_points, safety_criteria, safety_metrics,   # reads DURABILITY_COLLECTION here
                            safety_step)
from .restore import wait_http_ok

REFERENCE_HEALTH_S = 4.0
HEALTH_LIMIT_S = 0.5
RECONNECT_LIMIT_S = 2.0
# rag's /health may lag the truth by the lag its body declares; never grant more than this.
MAX_HEALTH_LAG_S = 1.5
MIN_HEALTH_SAMPLES = 3
QUERY = "How does the rag service handle a Qdrant outage?"
T = TypeVar("T")


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


@dataclass(frozen=True)
class RagHealth:
    """rag's /health body as it answered (the evidence keeps it whole: `details.baseline.health`),
    and what the run reads of it."""

    body: JsonObject

    @property
    def collection(self) -> str:
        return self.body.get("collection", "docs")

    @property
    def retry_policy(self) -> JsonObject:
        """rag's retry policy as its body declares it (`details.retry_policy`)."""
        return self.body.get("retry_policy") or {}

    @property
    def deadline_s(self) -> float:
        """The policy's deadline: how long an outage query may take."""
        return float(self.retry_policy.get("deadline_s", 3.0))

    @property
    def declared_lag_s(self) -> object:
        """How far its /health may lag Qdrant's real state, as the body declares it (unchecked)."""
        return (self.body.get("health_policy") or {}).get("max_lag_s")


@dataclass(frozen=True)
class HealthSample:
    """One rag /health reading: sent at `t` (monotonic), answered `latency_s` later."""

    t: float
    latency_s: float
    status_code: int | None
    qdrant: object                  # what the body said; anything but False during the outage is wrong
    breaker: object = None          # the body's breaker state
    error: str | None = None        # why no body was read
    phase: str = ""                 # outage or recovery, once recorded


@dataclass(frozen=True)
class QueryProbe:
    """One rag /query: sent at `t` (monotonic), answered `latency_s` later.  Its fields are the
    evidence's query records (`details.queries`, `.after`, `.baseline.query`), in that order."""

    t: float
    latency_s: float
    status_code: int | None
    retry_after: str | None
    hits: int
    attempts: object                # rag's own count, as its body says
    error: object                   # the body's error, or the transport's

    def to_json(self) -> JsonObject:
        return asdict(self)


async def _health(client: httpx.AsyncClient, rag: Service) -> HealthSample:
    t = time.monotonic()
    try:
        r = await client.get(f"{rag.url}/health", timeout=5.0)
        body = r.json()
        return HealthSample(t, time.monotonic() - t, r.status_code, body.get("qdrant"),
                            breaker=(body.get("breaker") or {}).get("state"))
    except (httpx.HTTPError, ValueError) as e:
        return HealthSample(t, time.monotonic() - t, None, None, error=f"{e.__class__.__name__}")


async def _query(client: httpx.AsyncClient, rag: Service) -> QueryProbe:
    t = time.monotonic()
    try:
        r = await client.post(f"{rag.url}/query", json={"query": QUERY, "top_k": 3}, timeout=30.0)
        body = r.json()
        return QueryProbe(t, time.monotonic() - t, r.status_code, r.headers.get("retry-after"),
                          len(body.get("hits") or []), body.get("attempts"), body.get("error"))
    except (httpx.HTTPError, ValueError) as e:
        return QueryProbe(t, time.monotonic() - t, None, None, 0, None, f"{e.__class__.__name__}: {e}"[:200])


def run_qdrant(ctx: Context, run: Run, o: QdrantOptions) -> tuple[CheckResult, str]:
    o.validate()
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
    base = qdrant_baseline(run, qdrant, rag, stack.role(Role.EMBEDDING))
    frame, out = run_outage(ctx, run, o, qdrant, rag)
    after = Recovery(asyncio.run(_with_client(lambda c: _query(c, rag))) if frame.restored else None,
                     count_points(qdrant, base.collection) if frame.restored else None,
                     safety_step(ctx, run, qdrant, frame, o.data_safety, o.safety_points))
    metrics, dod, details = qdrant_evidence(o, qdrant, base, frame, out, after)
    r = CheckResult("qdrant", started_at, time.perf_counter() - t_wall, metrics, dod, details)
    return r, qdrant_text(r)


@dataclass
class Baseline:
    """rag and the vector DB before the fault."""

    health: RagHealth
    query: QueryProbe
    embedding: EmbeddingProbe | None
    embedding_lines: list[Criterion]
    points: int | None

    @property
    def collection(self) -> str:
        return self.health.collection


def qdrant_baseline(run: Run, qdrant: Service, rag: Service, emb: Service | None) -> Baseline:
    health = RagHealth(httpx.get(f"{rag.url}/health", timeout=5).json())
    collection = health.collection
    q0 = asyncio.run(_with_client(lambda c: _query(c, rag)))
    emb_probe, emb_lines = embedding_baseline(emb, qdrant, collection)
    run.say(f"embedding: {emb_probe.served_model if emb_probe else 'no embedding service'}, "
            f"dim {emb_probe.dim if emb_probe else None}")
    points = count_points(qdrant, collection)
    run.say(f"baseline: query HTTP {q0.status_code} with {q0.hits} hits; {points} points in {collection}")
    return Baseline(health, q0, emb_probe, emb_lines, points)


@dataclass
class Outage:
    """What the outage showed: rag's /health samples and its queries, and the run's moments."""

    health: list[HealthSample] = field(default_factory=list)
    queries: list[QueryProbe] = field(default_factory=list)
    in_effect: float | None = None    # the engine had returned: Qdrant was away from here
    ready: float | None = None        # Qdrant's /readyz OK after the restore
    rag_ok: float | None = None       # rag's /health said qdrant:true again


@dataclass
class Recovery:
    """After the restore: a query, the collection's points, the data-safety step's evidence."""

    query: QueryProbe | None
    points: int | None
    safety: DataSafety | None


def run_outage(ctx: Context, run: Run, o: QdrantOptions, qdrant: Service, rag: Service) -> tuple[FaultFrame, Outage]:
    """The fault under its frame: rag's /health sampled and queries sent while Qdrant is away, then
    the restore and rag's reconnect, polled tightly."""
    out = Outage()

    def rec_health(h: HealthSample, phase: str) -> None:
        out.health.append(replace(h, phase=phase))
        run.event("rag_health", t=run.to_run_time(h.t), phase=phase, latency_s=round(h.latency_s, 4),
                  qdrant=h.qdrant, status_code=h.status_code, breaker=h.breaker)

    async def sample(client: httpx.AsyncClient, end: float) -> None:
        while time.monotonic() < end:
            rec_health(await _health(client, rag), "outage")
            await asyncio.sleep(o.health_interval_s)

    async def send_queries(client: httpx.AsyncClient, end: float) -> None:
        while time.monotonic() < end:
            q = await _query(client, rag)
            out.queries.append(q)
            run.event("rag_query", t=run.to_run_time(q.t), phase="outage", latency_s=round(q.latency_s, 4),
                      status=q.status_code, retry_after=q.retry_after, attempts=q.attempts)
            await asyncio.sleep(max(0.0, o.query_interval_s - q.latency_s))

    async def outage(f: FaultFrame) -> None:
        async with httpx.AsyncClient() as client:
            run.say(f"fault: docker {o.mode} {qdrant.name} for {o.outage_s:g} s")
            await asyncio.to_thread(f.inject)
            out.in_effect = time.monotonic()   # docker has returned: Qdrant is away from here
            end = time.monotonic() + o.outage_s
            await asyncio.gather(sample(client, end), send_queries(client, end))
            if not o.restore:
                return
            run.say(f"restore: {qdrant.name}")
            await asyncio.to_thread(f.undo)
            out.ready = await asyncio.to_thread(wait_http_ok, f"{qdrant.url}/readyz", 60.0, None, 0.02)
            # rag's health turns true within its declared lag of Qdrant's; poll it tightly
            stop_at = time.monotonic() + 30
            while time.monotonic() < stop_at:
                h = await _health(client, rag)
                rec_health(h, "recovery")
                if h.qdrant is True:
                    out.rag_ok = h.t + h.latency_s
                    break
                await asyncio.sleep(0.02)

    frame = FaultFrame(ctx, run, qdrant, o.mode, restore=o.restore, phase="qdrant")
    frame.apply(lambda f: asyncio.run(outage(f)))
    return frame, out


def qdrant_evidence(o: QdrantOptions, qdrant: Service, base: Baseline, frame: FaultFrame, out: Outage,
                    after: Recovery) -> tuple[JsonObject, list[Criterion], JsonObject]:
    """The run's metrics, DoD and details."""
    out_h = [h for h in out.health if h.phase == "outage"]
    queries = out.queries
    # Every outage sample counts for latency, those inside the declared lag included.
    deg = max((h.latency_s for h in out_h), default=None)
    lag_s = health_lag_s(base.health)
    truth = health_truth(out_h, out.in_effect, lag_s)
    reconnect = (out.rag_ok - out.ready) if out.rag_ok and out.ready else None
    metrics = {
        "degraded_health_latency_s": rounded(deg, 4),
        "degraded_health_p50_s": rounded(statistics.median([h.latency_s for h in out_h]), 4) if out_h else None,
        "outage_query_status": queries[0].status_code if queries else None,
        "outage_query_max_latency_s": rounded(max((q.latency_s for q in queries), default=None), 4),
        "retry_attempts_seen": [q.attempts for q in queries],
        "reconnect_time_s": rounded(reconnect, 4),
        "health_detect_s": truth.detect_s,
        "health_samples_judged": truth.judged,
        "points_before": base.points,
        "points_after": after.points,
        "restored": frame.restored,
        **safety_metrics(after.safety),
    }
    dod = [*base.embedding_lines, *outage_lines(metrics, out_h, truth, lag_s, queries, base.health.deadline_s),
           *recovery_lines(metrics, base.points, after, frame.restored)]
    details = {"mode": o.mode, "outage_s": o.outage_s, "collection": base.collection,
               "retry_policy": base.health.retry_policy, "service": qdrant.name,
               "baseline": {"health": base.health.body, "query": base.query.to_json(),
                            "embedding": base.embedding.to_json() if base.embedding else None},
               "queries": [q.to_json() for q in queries], "after": after.query.to_json() if after.query else None,
               "health_samples": len(out_h), "health_truth": truth.to_json(),
               "data_safety": after.safety.to_json() if after.safety else None,
               "restored": frame.restored, "restore_action": frame.restore_how, "notes": frame.notes,
               "marks": {"qdrant_ready_after_restore_s": rounded(out.ready - frame.t_restore, 4)
                         if out.ready and frame.t_restore else None}}
    return metrics, dod, details


def outage_lines(metrics: JsonObject, out_h: list[HealthSample], truth: HealthTruth, lag_s: float,
                 queries: list[QueryProbe], deadline_s: float) -> list[Criterion]:
    """While Qdrant was away: rag's /health fast and truthful, its queries refused in time."""
    nq = len(queries)
    return [
        Criterion.judge("degraded_health_latency_s (rag /health while Qdrant is down)",
                        f"< {HEALTH_LIMIT_S} s (reference: {REFERENCE_HEALTH_S:g} s)", metrics["degraded_health_latency_s"],
                        lambda v: v < HEALTH_LIMIT_S, samples=len(out_h), unit=" s"),
        truth_criterion(truth, lag_s),
        Criterion.judge("outage_query_status with Retry-After", "503 + Retry-After", queries,
                        lambda qs: all(q.status_code == 503 and q.retry_after for q in qs), samples=nq,
                        shown=", ".join(f"{q.status_code}{'+RA' if q.retry_after else ''}" for q in queries)),
        Criterion.judge("outage queries end within the rag deadline", f"<= {deadline_s + 0.5:g} s",
                        metrics["outage_query_max_latency_s"], lambda v: v <= deadline_s + 0.5, samples=nq, unit=" s"),
    ]


def recovery_lines(metrics: JsonObject, points_before: int | None, after: Recovery,
                   restored: bool) -> list[Criterion]:
    """After the restore: rag reconnected fast, nothing lost, queries answered again."""
    q1, points_after = after.query, after.points
    return [
        Criterion.judge("reconnect_time_s (Qdrant /readyz OK -> rag qdrant:true)", f"< {RECONNECT_LIMIT_S} s",
                        metrics["reconnect_time_s"], lambda v: v < RECONNECT_LIMIT_S,
                        samples=1 if metrics["reconnect_time_s"] is not None else 0, unit=" s"),
        Criterion.judge("points_after == points_before", str(points_before),
                        points_after if points_before is not None else None, lambda v: v == points_before,
                        samples=1, shown=str(points_after)),
        Criterion.judge("query after recovery returns hits", ">= 1",
                        q1.hits if q1 and q1.status_code == 200 else None, lambda v: v >= 1,
                        samples=1 if q1 else 0, shown=str(q1.hits if q1 else None)),
        restored_line("Qdrant", restored),
        *(safety_criteria(after.safety.writes) if after.safety else []),
    ]


async def _with_client(fn: Callable[[httpx.AsyncClient], Awaitable[T]]) -> T:
    async with httpx.AsyncClient() as c:
        return await fn(c)


def health_lag_s(rag_health: RagHealth) -> float:
    """How far rag's /health may lag Qdrant's real state, as its body declares, capped."""
    declared = rag_health.declared_lag_s
    if not isinstance(declared, (int, float)) or isinstance(declared, bool) or not declared >= 0:
        return 0.0
    return min(float(declared), MAX_HEALTH_LAG_S)


@dataclass(frozen=True)
class HealthTruth:
    """Whether rag's /health told the truth while Qdrant was away (`details.health_truth`)."""

    samples: int
    judged: int                     # sent after the declared lag: these must say qdrant:false
    wrong: int
    wrong_readings: list[object]    # the first few wrong readings, as rag gave them
    detect_s: float | None          # the fault in effect -> the first qdrant:false answered
    ok: bool

    def to_json(self) -> JsonObject:
        return asdict(self)


def health_truth(samples: list[HealthSample], t_in_effect: float | None, lag_s: float) -> HealthTruth:
    """Judge rag's /health samples taken while Qdrant was away: every sample sent later than
    `lag_s` after the fault took effect must say qdrant:false, and there must be enough of them."""
    judged = [h for h in samples if t_in_effect is not None and h.t >= t_in_effect + lag_s]
    wrong = [h for h in judged if h.qdrant is not False]
    first_false = next((h for h in samples if h.qdrant is False), None)
    detect = (first_false.t + first_false.latency_s - t_in_effect) if first_false and t_in_effect else None
    return HealthTruth(len(samples), len(judged), len(wrong), [h.qdrant for h in wrong][:5], rounded(detect, 4),
                       len(judged) >= MIN_HEALTH_SAMPLES and not wrong)


def truth_criterion(truth: HealthTruth, lag_s: float) -> Criterion:
    actual = (f"{truth.judged - truth.wrong} of {truth.judged} false"
              + (f" ({truth.samples - truth.judged} earlier samples inside the lag not judged)"
                 if truth.samples > truth.judged else ""))
    return Criterion.judge(f"rag /health tells the truth during the outage (samples after its {lag_s:g} s lag)",
                           f"qdrant: false in all, >= {MIN_HEALTH_SAMPLES} samples", truth.wrong,
                           lambda w: w == 0, samples=truth.judged, need=MIN_HEALTH_SAMPLES, shown=actual)


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
