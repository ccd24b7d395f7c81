"""summary.json: the machine form of the report, with the overall status, the exit code and
the conclusion.  Everything else (Markdown, HTML, JUnit) is rendered from it.

Each check's exit code comes from the one rule, `CheckResult.exit_code` ("not restored" means 5,
an interrupted check 130), applied to the check files read back.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from .. import __version__
from ..errors import ExitCode, aggregate_exit
from ..evidence import CHECK_FILES, STATUSES, CheckResult, JsonObject, utc_now_iso

from .model import fmt, fmt_metric


def restore_failed(check: JsonObject) -> bool:
    """True when the check says it could not restore the stack (the one rule, in evidence.py)."""
    return CheckResult.from_json(check).restore_failed


def check_exit_code(check: JsonObject) -> int:
    """One check's exit code, by the same rule the run itself used."""
    return CheckResult.from_json(check).exit_code()


# Chaos checks whose load's availability (2xx of all requests) the summary shows.
CHAOS_CHECKS = ("failover",)


# The reference procedure and what each check does

CHECK_TITLES = {
    "status": "Service status",
    "functional": "Functional check (real requests)",
    "health": "Health endpoints",
    "failover": "Failover",
    "qdrant": "Qdrant outage and retries",
    "gpu": "GPU memory",
}

SCENARIOS = {
    "status": "Discover the stack from its compose labels and confirm every service's "
              "container is running and healthy.",
    "functional": "Send a real chat completion through the gateway (alias {alias}), a real "
                  "embedding (model name and dimension as the embedding server's labels say, unit "
                  "length) and a real RAG query; record which backend served the completion and "
                  "the latency.",
    "health": "Call every service's health endpoint and count the ones that answer 200.",
    "failover": "Under steady load through the gateway, stop the primary model server "
                "({target}); time until the secondary ({secondary}) serves, count "
                "every failed request, then restore the primary and time the failback.",
    "qdrant": "Stop Qdrant: rag /health must answer fast with qdrant:false and queries must "
              "degrade cleanly; restart Qdrant, time until rag reports qdrant:true, and "
              "compare the stored points before and after.",
    "gpu": "Sample GPU memory with NVML while both models are loaded and compare it with "
           "the budget expected from the models' GGUF metadata.",
}

def scenario_for(check: str, details: JsonObject) -> str:
    """The scenario text, with the names this stack really has (from the check's own details)."""
    names = {k: str(details.get(k) or f"unknown {k}") for k in ("alias", "target", "secondary")}
    return SCENARIOS.get(check, "").format(**names)


# The hand-run reference procedure's result, per check (DESIGN, "Our reference").
REFERENCE = {
    "status": "6/6 services Up (healthy)",
    "health": "6/6 returned 200",
    "failover": "1.15 s, HTTP 200",
    "qdrant": "rag /health took 4 s to say qdrant:false, then recovered",
    "gpu": "5374 MiB vs 5325 MiB expected (+0.9%)",
}

@dataclass
class PerfRow:
    check: str
    label: str
    metrics: tuple[str, ...]          # the metrics the measured figure is made of
    keywords: tuple[str, ...]         # DoD criterion words that match this row
    reference: str = ""
    measure: str = "one"              # one | ratio | arrow | budget

    def measured(self, m: JsonObject) -> str | None:
        vals = [m.get(k) for k in self.metrics]
        if vals[0] is None:
            return None
        if self.measure == "ratio" and len(vals) == 2 and vals[1] is not None:
            return f"{fmt(vals[0])}/{fmt(vals[1])}"
        if self.measure == "dims" and len(vals) == 2:
            return f"{fmt(vals[0])} ({fmt(vals[1])} dims)"
        if self.measure == "arrow" and len(vals) == 2:
            return f"{fmt(vals[0])} → {fmt(vals[1])}"
        if self.measure == "budget" and len(vals) == 3:
            s = f"{fmt_metric(self.metrics[0], vals[0])} vs {fmt_metric(self.metrics[1], vals[1])} expected"
            if vals[2] is not None:
                s += f" ({fmt_metric(self.metrics[2], vals[2])})"
            return s
        return fmt_metric(self.metrics[0], vals[0])


PERF_ROWS: list[PerfRow] = [
    PerfRow("status", "Services up and healthy", ("services_healthy", "services_total"),
            ("services_healthy", "healthy"), REFERENCE["status"], "ratio"),
    PerfRow("functional", "Completion latency through the gateway", ("completion_latency_s",),
            ("completion_latency", "completion latency")),
    PerfRow("functional", "Embedding model served", ("embedding_model", "embedding_dim"),
            ("embedding model", "embedding dimension"), measure="dims"),
    PerfRow("functional", "RAG hits", ("rag_hits",), ("rag_hits", "rag hits")),
    PerfRow("health", "Health endpoints answering 200", ("endpoints_ok", "endpoints_total"),
            ("endpoints_ok", "endpoints"), REFERENCE["health"], "ratio"),
    PerfRow("health", "Health sweep wall time", ("wall_s",), ("wall_s", "wall time", "concurrently")),
    PerfRow("failover", "Failover time (primary gone to the secondary's first reply to a request sent after it)",
            ("failover_time_s",), ("failover_time", "failover time"), REFERENCE["failover"]),
    PerfRow("failover", "Failover penalty (that reply over the secondary's median)",
            ("failover_penalty_s",), ("failover_penalty", "penalty")),
    PerfRow("failover", "Failed requests during the run", ("failed_requests", "total_requests"),
            ("failed_requests", "failed requests"), "", "ratio"),
    PerfRow("failover", "Failback time", ("failback_time_s",), ("failback_time", "failback")),
    PerfRow("qdrant", "rag /health latency while Qdrant is down", ("degraded_health_latency_s",),
            ("degraded_health_latency", "degraded"),
            "4 s to say qdrant:false"),
    PerfRow("qdrant", "Reconnect time (Qdrant ready to rag qdrant:true)", ("reconnect_time_s",),
            ("reconnect_time", "reconnect"), "recovered (not timed)"),
    PerfRow("qdrant", "Points before → after", ("points_before", "points_after"),
            ("points_before", "points_after", "points"), "", "arrow"),
    PerfRow("gpu", "GPU memory used vs expected", ("used_mib", "expected_mib", "error_pct"),
            ("used_mib", "error_pct", "within tolerance", "vram", "gpu memory"), REFERENCE["gpu"], "budget"),
    PerfRow("gpu", "Peak GPU memory used", ("peak_used_mib",), ("peak_used", "peak")),
]


def _match_dod(row: PerfRow, dod: list[JsonObject], used: set[int]) -> JsonObject | None:
    """The DoD line this performance row reports on: its criterion names one of the row's
    metrics, else it contains one of the row's keywords (first match wins, each line once)."""
    norm = [(i, str(d.get("criterion", "")).lower()) for i, d in enumerate(dod)]
    for want in (row.metrics, row.keywords):
        for kw in want:
            pats = {kw.lower(), kw.lower().replace("_", " ")}
            for i, text in norm:
                if i in used:
                    continue
                if any(re.search(rf"(?<![\w]){re.escape(p)}(?![\w])", text) for p in pats):
                    used.add(i)
                    return dod[i]
    return None


def failed_dod_lines(check: JsonObject) -> list[JsonObject]:
    return [d for d in check.get("dod", []) if not d.get("pass")]


def _check_reason(check: JsonObject) -> str:
    d = check.get("details", {})
    for key in ("reason", "error", "message"):
        if d.get(key):
            return str(d[key])
    return ""


def build_summary(run_dir: Path, checks: dict[str, JsonObject],
                  manifest: JsonObject | None, charts: dict[str, str],
                  warnings: list[str]) -> JsonObject:
    """The machine form of the report (summary.json); ``manifest`` is manifest.json as read."""
    rows = [_check_row(run_dir, cid, c) for cid, c in checks.items()]
    exit_code = aggregate_exit([r["exit_code"] for r in rows])
    statuses = [r["status"] for r in rows]
    overall = _overall(rows, exit_code)
    perf = _performance_rows(checks)
    failed_dod = [{"check": cid, **d} for cid, c in checks.items() for d in failed_dod_lines(c)]
    present = list(checks)
    return {
        "schema": "llmops.summary/1",
        "tool_version": __version__,
        "generated_at": utc_now_iso(),
        "run_dir": str(run_dir),
        "run_id": run_dir.name,
        "status": overall,
        "headline": headline(overall, exit_code, rows),
        "exit_code": exit_code,
        "exit_meaning": ExitCode.meaning_of(exit_code),
        "availability": availability(checks),
        "counts": {s: statuses.count(s) for s in STATUSES} | {"total": len(statuses)},
        "checks": rows,
        "not_run": [c for c in CHECK_FILES if c not in present],
        "not_in_stack": list((manifest or {}).get("absent_roles") or []),
        "failed_dod": failed_dod,
        "restore_failed": [r["check"] for r in rows if r["restore_failed"]],
        "performance": perf,
        "environment": manifest,
        "charts": dict(charts),
        "warnings": list(warnings),
        "conclusion": _conclusion_lines(rows, exit_code),
    }


def _check_row(run_dir: Path, cid: str, c: JsonObject) -> JsonObject:
    """One check's line of the summary, from its evidence file."""
    stem = CHECK_FILES[cid]
    return {
        "check": cid,
        "file": f"{stem}.json",
        "evidence": f"{stem}.txt" if (run_dir / f"{stem}.txt").exists() else f"{stem}.json",
        "title": CHECK_TITLES.get(cid, cid),
        "scenario": str(c["details"].get("scenario") or scenario_for(cid, c["details"])),
        "status": c["status"],
        "exit_code": check_exit_code(c),
        "restore_failed": restore_failed(c),
        "started_at": c.get("started_at"),
        "duration_s": c.get("duration_s"),
        "reason": _check_reason(c) or None,
        "metrics": c["metrics"],
        "dod": c["dod"],
        "dod_failed": [d.get("criterion", "") for d in failed_dod_lines(c)],
        "reference": REFERENCE.get(cid),
    }


def _overall(rows: list[JsonObject], exit_code: int) -> str:
    """The run's one status: a failed line or restore fails it; a lone GPU skip (no GPU) passes."""
    statuses = [r["status"] for r in rows]
    if exit_code == ExitCode.RESTORE_FAILED or "fail" in statuses:
        return "fail"
    if "error" in statuses:
        return "error"
    if "skipped" in statuses and not only_gpu_skipped(rows):
        return "skipped"
    return "pass"


def _performance_rows(checks: dict[str, JsonObject]) -> list[JsonObject]:
    """The performance table: each figure beside the DoD line that judged it."""
    perf: list[JsonObject] = []
    used_dod: dict[str, set[int]] = {}
    for pr in PERF_ROWS:
        c = checks.get(pr.check)
        if c is None:
            continue
        measured = pr.measured(c["metrics"])
        if measured is None and c["status"] != "skipped":
            continue
        d = _match_dod(pr, c["dod"], used_dod.setdefault(pr.check, set())) if measured is not None else None
        if c["status"] == "skipped":
            status = "skipped"
        elif d is not None:
            status = "pass" if d.get("pass") else "fail"
        else:
            status = "n/a"
        perf.append({
            "check": pr.check, "criterion": pr.label, "metrics": list(pr.metrics),
            "expected": str(d.get("expected", "")) if d else "",
            "measured": measured if measured is not None else "n/a",
            "status": status, "dod_criterion": d.get("criterion") if d else None,
            "reference": pr.reference or None,
        })

    return perf


def only_gpu_skipped(rows: list[JsonObject]) -> bool:
    """Every check that could run passed, and the GPU check alone was skipped (no GPU here)."""
    skipped = [r for r in rows if r["status"] == "skipped"]
    return (len(skipped) == 1 and skipped[0]["check"] == "gpu"
            and all(r["status"] == "pass" for r in rows if r is not skipped[0]))


def headline(overall: str, exit_code: int, rows: list[JsonObject]) -> str:
    """What happened, in one line: `PASS (exit 0)`, `FAIL (exit 1)`, and for a machine without
    a GPU whose every other check passed `PASS (GPU check skipped: no GPU)` (exit 3 still)."""
    if overall == "pass" and only_gpu_skipped(rows):
        gpu = next(r for r in rows if r["check"] == "gpu")
        why = "no GPU" if "nvml" in str(gpu.get("reason") or "").lower() else (gpu.get("reason") or "skipped")
        return f"PASS (GPU check skipped: {why})"
    return f"{overall.upper()} (exit {exit_code})"


def availability(checks: dict[str, JsonObject]) -> list[JsonObject]:
    """Each chaos window's availability: 2xx responses of all the requests its load sent."""
    out = []
    for cid in CHAOS_CHECKS:
        m = (checks.get(cid) or {}).get("metrics") or {}
        if "availability_pct" in m:
            ok = None if m.get("failed_requests") is None or m.get("total_requests") is None \
                else m["total_requests"] - m["failed_requests"]
            out.append({"check": cid, "availability_pct": m["availability_pct"], "ok": ok,
                        "total": m.get("total_requests")})
    return out


def dod_phrase(d: JsonObject) -> str:
    return (f"\"{d.get('criterion', '')}\" (expected {d.get('expected', '')}, "
            f"measured {d.get('measured', '')})")


def _conclusion_lines(rows: list[JsonObject], exit_code: int) -> list[str]:
    """Plain sentences: what failed, naming the failed DoD lines; loudest first."""
    lines: list[str] = []
    n = len(rows)
    restore = [r for r in rows if r["restore_failed"]]
    failed = [r for r in rows if r["status"] == "fail"]
    errored = [r for r in rows if r["status"] == "error"]
    skipped = [r for r in rows if r["status"] == "skipped"]
    passed = [r for r in rows if r["status"] == "pass"]
    for r in restore:
        lines.append(f"RESTORE FAILED in {r['check']}: the stack was left degraded; "
                     f"run 'llmops chaos restore' and check the stack before trusting it.")
    for r in failed:
        bad = [d for d in r["dod"] if not d.get("pass")]
        if bad:
            lines.append(f"{r['check']} FAILED: " + "; ".join(dod_phrase(d) for d in bad) + ".")
        else:
            lines.append(f"{r['check']} FAILED, with no DoD line marked failed; "
                         f"see {r['evidence']}.")
    for r in errored:
        why = f": {r['reason']}" if r["reason"] else ""
        lines.append(f"{r['check']} could not run (error){why}.")
    for r in skipped:
        why = f": {r['reason']}" if r["reason"] else ""
        lines.append(f"{r['check']} was skipped{why}.")
    if not failed and not errored and not restore:
        lines.insert(0, f"All {len(passed)} checks that ran passed"
                        + (f" ({len(skipped)} skipped)." if skipped else "."))
    else:
        lines.insert(0, f"{len(passed)} of {n} checks passed.")
    lines.append(f"Exit code {exit_code}: {ExitCode.meaning_of(exit_code)}.")
    return lines
