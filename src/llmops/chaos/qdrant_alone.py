"""`chaos qdrant` on a stack with no rag service: the vector DB's own outage, restore and data."""

from __future__ import annotations

import time

from ..context import Context
from ..evidence import CheckResult, Criterion, utc_now_iso
from ..rounding import rounded
from ..runner import Run
from ..stack import Role, Service
from .common import FaultFrame, preflight
from .dod_common import restored_line
from .qdrant_options import QdrantOptions
from .qdrant_safety import all_points, safety_criteria, safety_metrics, safety_step
from .restore import wait_http_ok



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
    safety = safety_step(ctx, run, qdrant, frame, o.data_safety, o.safety_points)
    ready_s = (marks["ready"] - frame.t_restore) if marks["ready"] and frame.t_restore else None
    dod = [
        Criterion.judge("Qdrant /readyz OK after restore", "< 60 s", ready_s, lambda v: v < 60.0,
                        samples=1 if frame.t_restore else 0, unit=" s", shown=f"{rounded(ready_s, 4)} s"),
        restored_line("Qdrant", frame.restored),
    ]
    # The data that proves nothing was lost: the collections there were, and/or the data-safety
    # step's own.  An empty vector DB without data safety has none: that line fails, unmeasured.
    if before or not safety:
        dod.insert(1, Criterion.judge("every collection's points after == before", str(before),
                                      after if before else None, lambda v: v == before, samples=len(before),
                                      shown=str(after)))
    if safety:
        dod += safety_criteria(safety.writes)
    metrics = {"points_before": sum(v or 0 for v in before.values()), "restored": frame.restored,
               "qdrant_ready_after_restore_s": rounded(ready_s, 4), **safety_metrics(safety)}
    details = {"mode": o.mode, "outage_s": o.outage_s, "service": qdrant.name, "not_in_stack": [Role.RAG],
               "points_before": before, "points_after": after,
               "data_safety": safety.to_json() if safety else None, "restored": frame.restored,
               "restore_action": frame.restore_how, "notes": frame.notes}
    r = CheckResult("qdrant", started_at, time.perf_counter() - t_wall, metrics, dod, details)
    text = "\n".join([f"Vector DB outage test (no rag in this stack): docker {o.mode} {qdrant.name} for {o.outage_s:g} s",
                      f"  points before: {before}", f"  points after:  {after}",
                      f"  /readyz OK {rounded(ready_s, 4)} s after the restore ({frame.restore_how or 'none'})",
                      *(f"NOTE: {n}" for n in frame.notes)])
    return r, text
