"""The run report: summary.md, summary.html, summary.json, junit.xml and charts.

Everything here is rendered from the run folder's files only: the check JSON files,
``events.ndjson`` (for the charts) and ``manifest.json`` (for the environment).  Nothing
is re-run and nothing is re-measured.

One document model (:class:`Doc`, a list of blocks) is built once and rendered twice, to
Markdown here and to HTML in :mod:`llmops.report_html`, so that the two read the same.
Every figure goes through :func:`fmt` (bare numbers) or :func:`fmt_metric` (number and
unit), so the summary's figures are the same numbers as in the JSON files.

matplotlib is imported only inside :mod:`llmops.report_charts`' functions, so importing
this module (as the CLI does) stays cheap.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Union

from llmops import __version__
from llmops.errors import ExitCode, UsageError, aggregate_exit
from llmops.evidence import CHECK_FILES, STATUSES, load_checks, read_events, utc_now_iso

__all__ = [
    "ReportError", "ReportResult", "render_report", "build_summary", "fmt", "fmt_metric",
    "check_exit_code", "restore_failed", "flatten_metrics", "SUMMARY_MD", "SUMMARY_HTML",
    "SUMMARY_JSON", "JUNIT_XML", "CHART_FILES",
]

SUMMARY_MD = "summary.md"
SUMMARY_HTML = "summary.html"
SUMMARY_JSON = "summary.json"
JUNIT_XML = "junit.xml"
CHART_FILES: dict[str, str] = {
    "failover": "chart_failover.png",
    "qdrant": "chart_qdrant.png",
    "gpu": "chart_gpu.png",
}

EXIT_MEANING = {
    0: "all checks passed",
    1: "a check failed",
    3: "skipped (nothing failed, but something could not be checked)",
    5: "RESTORE FAILED: the stack was left degraded",
}


class ReportError(UsageError):
    """The run folder cannot be reported on (missing, empty, unreadable).  Exit 2."""


# --------------------------------------------------------------------------------------
# Number formatting: the one function both the Markdown and the HTML use.
# --------------------------------------------------------------------------------------

def fmt(value: Any) -> str:
    """Format one figure for people, the same way everywhere.

    ints as they are; floats rounded to 3 decimals (milliseconds for seconds), with an
    integral float written without ``.0``; bools as ``true``/``false`` (as in the JSON);
    ``None`` as ``n/a``.  Very small non-zero floats keep 3 significant digits.
    """
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        r = round(value, 3)
        if r == 0:
            return "0" if value == 0 else f"{value:.3g}"
        if r.is_integer() and abs(r) < 1e15:
            return str(int(r))
        return repr(r)
    if isinstance(value, (list, tuple)):
        return ", ".join(fmt(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k}: {fmt(v)}" for k, v in value.items())
    return str(value)


def metric_unit(name: str) -> str:
    """The unit a metric's name implies (DESIGN's suffixes)."""
    leaf = name.split(".")[-1]
    head = name.split(".")[0]
    if head == "per_service" or leaf.endswith("_mib"):
        return "MiB"
    if leaf.endswith("_s"):
        return "s"
    if leaf.endswith("_pct"):
        return "%"
    return ""


def fmt_metric(name: str, value: Any) -> str:
    """A metric with its unit: ``1.15 s``, ``5374 MiB``, ``+0.9%``.  Contains ``fmt(value)``."""
    text = fmt(value)
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return text
    unit = metric_unit(name)
    if unit == "%":
        return ("+" if value > 0 else "") + text + "%"
    return f"{text} {unit}" if unit else text


def flatten_metrics(metrics: dict[str, Any]) -> list[tuple[str, Any]]:
    """Metrics as (name, value) rows; a dict metric (``per_service``) becomes ``per_service.NAME``."""
    rows: list[tuple[str, Any]] = []
    for k, v in metrics.items():
        if isinstance(v, dict):
            if not v:
                rows.append((k, "none"))
            for sk, sv in v.items():
                rows.append((f"{k}.{sk}", sv))
        else:
            rows.append((k, v))
    return rows


# --------------------------------------------------------------------------------------
# Exit codes
# --------------------------------------------------------------------------------------

def restore_failed(check: dict[str, Any]) -> bool:
    """True when the check says it could not restore the stack (``restored`` is false)."""
    details = check.get("details") or {}
    metrics = check.get("metrics") or {}
    return details.get("restored") is False or metrics.get("restored") is False


def check_exit_code(check: dict[str, Any]) -> int:
    """One check's exit code: 5 when its restore failed, else pass 0, fail/error 1, skipped 3."""
    if restore_failed(check):
        return int(ExitCode.RESTORE_FAILED)
    status = check.get("status")
    return {"pass": 0, "fail": 1, "error": 1, "skipped": 3}.get(status, 1)


# --------------------------------------------------------------------------------------
# The document model
# --------------------------------------------------------------------------------------

@dataclass
class Text:
    text: str


@dataclass
class Code:
    text: str


@dataclass
class Strong:
    text: str


@dataclass
class Link:
    label: str
    href: str


Inline = Union[Text, Code, Strong, Link]


@dataclass
class Cell:
    spans: list
    attrs: dict[str, str] = field(default_factory=dict)   # data-* attributes for the HTML
    css: str = ""                                        # a class for the HTML


@dataclass
class Heading:
    level: int
    text: str
    anchor: str = ""


@dataclass
class Para:
    spans: list
    css: str = ""


@dataclass
class Table:
    headers: list[str]
    rows: list[list[Cell]]
    css: str = ""


@dataclass
class Bullets:
    items: list  # list[list[Inline]]


@dataclass
class Image:
    alt: str
    src: str      # a file name next to the summary


@dataclass
class Doc:
    title: str
    blocks: list = field(default_factory=list)

    def add(self, *blocks: Any) -> None:
        self.blocks.extend(blocks)


def _spans(x: Any) -> list:
    if isinstance(x, list):
        return x
    if isinstance(x, (Text, Code, Strong, Link)):
        return [x]
    return [Text(str(x))]


def cell(x: Any, css: str = "", **attrs: str) -> Cell:
    return Cell(_spans(x), {k.replace("_", "-"): v for k, v in attrs.items()}, css)


def status_cell(status: str) -> Cell:
    label = status.upper() if status in STATUSES else status
    spans: list = [Strong(label)] if status in ("fail", "error") else [Text(label)]
    return Cell(spans, {"data-status": status}, f"status-{status}")


# --------------------------------------------------------------------------------------
# Static text: the reference procedure and what each check does
# --------------------------------------------------------------------------------------

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
    "functional": "Send a real chat completion through the gateway (alias chat-7b) and a real "
                  "RAG query; record which backend served the completion and the latency.",
    "health": "Call every service's health endpoint and count the ones that answer 200.",
    "failover": "Under steady load through the gateway, stop the primary model server "
                "(inference-chat); time until the secondary (inference-code) serves, count "
                "every failed request, then restore the primary and time the failback.",
    "qdrant": "Stop Qdrant: rag /health must answer fast with qdrant:false and queries must "
              "degrade cleanly; restart Qdrant, time until rag reports qdrant:true, and "
              "compare the stored points before and after.",
    "gpu": "Sample GPU memory with NVML while both models are loaded and compare it with "
           "the budget expected from the models' GGUF metadata.",
}

# The hand-run reference procedure's result, per check (DESIGN, "Our reference").
REFERENCE = {
    "status": "6/6 services Up (healthy)",
    "health": "6/6 returned 200",
    "failover": "1.15 s, HTTP 200",
    "qdrant": "rag /health took 4 s to say qdrant:false, then recovered",
    "gpu": "5374 MiB vs 5325 MiB expected (+0.9%)",
}

CHART_FOR_CHECK = {"failover": "failover", "qdrant": "qdrant", "gpu": "gpu"}
CHART_TITLES = {
    "failover": "Failover timeline: latency per request, coloured by serving backend",
    "qdrant": "rag /health latency and qdrant status across the Qdrant outage",
    "gpu": "GPU memory per service against the budget",
}


@dataclass
class PerfRow:
    check: str
    label: str
    metrics: tuple[str, ...]          # the metrics the measured figure is made of
    keywords: tuple[str, ...]         # DoD criterion words that match this row
    reference: str = ""
    measure: str = "one"              # one | ratio | arrow | budget

    def measured(self, m: dict[str, Any]) -> str | None:
        vals = [m.get(k) for k in self.metrics]
        if vals[0] is None:
            return None
        if self.measure == "ratio" and len(vals) == 2 and vals[1] is not None:
            return f"{fmt(vals[0])}/{fmt(vals[1])}"
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
    PerfRow("functional", "RAG hits", ("rag_hits",), ("rag_hits", "rag hits")),
    PerfRow("health", "Health endpoints answering 200", ("endpoints_ok", "endpoints_total"),
            ("endpoints_ok", "endpoints"), REFERENCE["health"], "ratio"),
    PerfRow("health", "Health sweep wall time", ("wall_s",), ("wall_s", "wall time")),
    PerfRow("failover", "Failover time (fault to first reply from the secondary)",
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
            ("used_mib", "error_pct", "budget", "gpu memory"), REFERENCE["gpu"], "budget"),
    PerfRow("gpu", "Peak GPU memory used", ("peak_used_mib",), ("peak_used", "peak")),
]


def _match_dod(row: PerfRow, dod: list[dict[str, Any]], used: set[int]) -> dict[str, Any] | None:
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


# --------------------------------------------------------------------------------------
# Reading the run folder
# --------------------------------------------------------------------------------------

def _read_events_tolerant(run_dir: Path, warnings: list[str]) -> list[dict[str, Any]]:
    try:
        return read_events(run_dir)
    except (json.JSONDecodeError, UnicodeDecodeError):
        pass
    out, bad = [], 0
    for line in (run_dir / "events.ndjson").read_text(errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            bad += 1
            continue
        if isinstance(rec, dict):
            out.append(rec)
    warnings.append(f"events.ndjson: skipped {bad} unreadable line(s)")
    return out


def _read_manifest(run_dir: Path, warnings: list[str]) -> dict[str, Any] | None:
    p = run_dir / "manifest.json"
    if not p.exists():
        return None
    try:
        data = json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        warnings.append(f"manifest.json is unreadable: {e}")
        return None
    return data if isinstance(data, dict) else {"manifest": data}


def _load_checks(run_dir: Path) -> dict[str, dict[str, Any]]:
    try:
        checks = load_checks(run_dir)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ReportError(f"a check file in {run_dir} is not valid JSON: {e}") from None
    for cid, c in checks.items():
        if not isinstance(c, dict):
            raise ReportError(f"{CHECK_FILES[cid]}.json is not a JSON object")
        c.setdefault("check", cid)
        if c.get("status") not in STATUSES:
            raise ReportError(f"{CHECK_FILES[cid]}.json: status must be one of "
                              f"{', '.join(STATUSES)}, not {c.get('status')!r}")
        c.setdefault("metrics", {})
        c.setdefault("dod", [])
        c.setdefault("details", {})
        if not isinstance(c["metrics"], dict):
            c["metrics"] = {}
        if not isinstance(c["details"], dict):
            c["details"] = {}
    return checks


# --------------------------------------------------------------------------------------
# The summary (machine form); everything else is rendered from it
# --------------------------------------------------------------------------------------

def _failed_dod(check: dict[str, Any]) -> list[dict[str, Any]]:
    return [d for d in check.get("dod", []) if not d.get("pass")]


def _check_reason(check: dict[str, Any]) -> str:
    d = check.get("details", {})
    for key in ("reason", "error", "message"):
        if d.get(key):
            return str(d[key])
    return ""


def _manifest_env(manifest: dict[str, Any] | None) -> list[tuple[str, Any]]:
    """The environment rows, in a fixed order, read leniently from manifest.json."""
    if manifest is None:
        return []
    m = dict(manifest)
    host = m.get("host")
    gpu = m.get("gpu") if isinstance(m.get("gpu"), dict) else {}
    host_d = host if isinstance(host, dict) else {}

    def take(*keys: str, src: dict[str, Any] | None = None) -> Any:
        src = m if src is None else src
        for k in keys:
            if src.get(k) not in (None, "", {}, []):
                return src[k]
        return None

    rows: list[tuple[str, Any]] = [
        ("Tool version", take("tool_version", "llmops_version", "version")),
        ("Git SHA", take("git_sha", "git", "commit")),
        ("Profile", take("profile")),
        ("Host", host if isinstance(host, str) else take("hostname", "name", src=host_d)
         or take("hostname")),
        ("OS / platform", take("os", "platform", src=host_d) or take("platform", "os")),
        ("Compose project", take("compose_project", "project")),
        ("Compose config hash", take("compose_config_hash", "compose_hash", "config_hash")),
        ("NVIDIA driver", take("driver_version", "nvidia_driver", "driver")
         or take("driver_version", "driver", src=gpu)),
        ("CUDA", take("cuda_version", "cuda") or take("cuda_version", "cuda", src=gpu)),
        ("GPU", take("name", "gpu_name", src=gpu) or take("gpu_name")),
        ("Docker", take("docker_version", "docker")),
        ("Images", take("images", "image_ids")),
        ("Router settings", take("router_settings", "litellm_router", "router")),
    ]
    return [(k, v) for k, v in rows if v is not None]


def build_summary(run_dir: Path, checks: dict[str, dict[str, Any]],
                  manifest: dict[str, Any] | None, charts: dict[str, str],
                  warnings: list[str]) -> dict[str, Any]:
    """The machine form of the report (summary.json)."""
    rows = []
    for cid, c in checks.items():
        stem = CHECK_FILES[cid]
        rows.append({
            "check": cid,
            "file": f"{stem}.json",
            "evidence": f"{stem}.txt" if (run_dir / f"{stem}.txt").exists() else f"{stem}.json",
            "title": CHECK_TITLES.get(cid, cid),
            "scenario": str(c["details"].get("scenario") or SCENARIOS.get(cid, "")),
            "status": c["status"],
            "exit_code": check_exit_code(c),
            "restore_failed": restore_failed(c),
            "started_at": c.get("started_at"),
            "duration_s": c.get("duration_s"),
            "reason": _check_reason(c) or None,
            "metrics": c["metrics"],
            "dod": c["dod"],
            "dod_failed": [d.get("criterion", "") for d in _failed_dod(c)],
            "reference": REFERENCE.get(cid),
        })
    codes = [r["exit_code"] for r in rows]
    exit_code = aggregate_exit(codes)
    statuses = [r["status"] for r in rows]
    if exit_code == 5 or "fail" in statuses:
        overall = "fail"
    elif "error" in statuses:
        overall = "error"
    elif "skipped" in statuses:
        overall = "skipped"
    else:
        overall = "pass"

    perf = []
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

    failed_dod = [{"check": cid, **d} for cid, c in checks.items() for d in _failed_dod(c)]
    present = list(checks)
    return {
        "schema": "llmops.summary/1",
        "tool_version": __version__,
        "generated_at": utc_now_iso(),
        "run_dir": str(run_dir),
        "run_id": run_dir.name,
        "status": overall,
        "exit_code": exit_code,
        "exit_meaning": EXIT_MEANING.get(exit_code, ""),
        "counts": {s: statuses.count(s) for s in STATUSES} | {"total": len(statuses)},
        "checks": rows,
        "not_run": [c for c in CHECK_FILES if c not in present],
        "failed_dod": failed_dod,
        "restore_failed": [r["check"] for r in rows if r["restore_failed"]],
        "performance": perf,
        "environment": manifest,
        "charts": dict(charts),
        "warnings": list(warnings),
        "conclusion": _conclusion_lines(rows, exit_code),
    }


def _dod_phrase(d: dict[str, Any]) -> str:
    return (f"\"{d.get('criterion', '')}\" (expected {d.get('expected', '')}, "
            f"measured {d.get('measured', '')})")


def _conclusion_lines(rows: list[dict[str, Any]], exit_code: int) -> list[str]:
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
            lines.append(f"{r['check']} FAILED: " + "; ".join(_dod_phrase(d) for d in bad) + ".")
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
    lines.append(f"Exit code {exit_code}: {EXIT_MEANING.get(exit_code, '')}.")
    return lines


# --------------------------------------------------------------------------------------
# The document (for md and html)
# --------------------------------------------------------------------------------------

def _env_value_spans(v: Any) -> list:
    if isinstance(v, dict):
        return _join_code(f"{k}: {_short(x)}" for k, x in v.items())
    if isinstance(v, list):
        return _join_code(_short(x) for x in v)
    return [Code(fmt(v))]


def _short(x: Any) -> str:
    if isinstance(x, (dict, list)):
        return json.dumps(x, sort_keys=True, default=str)
    s = fmt(x)
    # image ids: sha256:<64 hex> is unreadable in a table; keep the usual 12.
    if s.startswith("sha256:") and len(s) > 19:
        return s[:19]
    return s


def _join_code(items: Iterable[str]) -> list:
    out: list = []
    for i, s in enumerate(items):
        if i:
            out.append(Text(", "))
        out.append(Code(s))
    return out


def build_doc(summary: dict[str, Any]) -> Doc:
    run_id = summary["run_id"]
    doc = Doc(f"llmops reliability report: {run_id}")
    status, code = summary["status"], summary["exit_code"]
    doc.add(Heading(1, doc.title))
    doc.add(Para([Text("Result: "), Strong(f"{status.upper()} (exit {code})"),
                  Text(f": {summary['exit_meaning']}.")],
                 css=f"verdict status-{status}"))
    if summary["restore_failed"]:
        doc.add(Para([Strong("RESTORE FAILED: the stack was left degraded by "
                             + ", ".join(summary["restore_failed"]) + "."),
                      Text(" Run "), Code("llmops chaos restore"), Text(".")], css="loud"))
    doc.add(Para([Text("Rendered from the run folder's JSON files only "
                       f"(generated {summary['generated_at']} by llmops {summary['tool_version']}); "
                       "nothing was re-run.")], css="muted"))

    # Test table
    doc.add(Heading(2, "Tests", "tests"))
    rows = []
    for r in summary["checks"]:
        stem = CHECK_FILES[r["check"]]
        rows.append([cell(stem[:2]), cell(r["title"]), status_cell(r["status"]),
                     cell([Link(r["evidence"], r["evidence"]), Text(" ("),
                           Link("json", r["file"]), Text(")")])])
    doc.add(Table(["#", "check", "result", "evidence file"], rows))
    if summary["not_run"]:
        doc.add(Para([Text("Not in this run: ")] + _join_code(summary["not_run"]) + [Text(".")]))

    # One section per check
    for r in summary["checks"]:
        cid = r["check"]
        stem = CHECK_FILES[cid]
        doc.add(Heading(2, f"{stem[:2]} {r['title']}: {r['status'].upper()}", f"check-{cid}"))
        doc.add(Para([Strong("Scenario."), Text(" " + r["scenario"])]))
        meta: list = [Text("Evidence: "), Link(r["evidence"], r["evidence"]), Text(", "),
                      Link(r["file"], r["file"])]
        if r.get("started_at"):
            meta += [Text(f". Started {r['started_at']}")]
        if r.get("duration_s") is not None:
            meta += [Text(f", took {fmt_metric('duration_s', r['duration_s'])}")]
        meta.append(Text("."))
        doc.add(Para(meta))
        if r.get("reference"):
            doc.add(Para([Strong("Reference procedure:"), Text(" " + r["reference"] + ".")]))
        if r["restore_failed"]:
            doc.add(Para([Strong("RESTORE FAILED: this check left the stack degraded.")],
                         css="loud"))
        if r["status"] in ("skipped", "error") and r.get("reason"):
            doc.add(Para([Strong("Skipped:" if r["status"] == "skipped" else "Error:"),
                          Text(" " + r["reason"])]))
        figs = flatten_metrics(r["metrics"])
        if figs:
            doc.add(Heading(3, "Figures"))
            doc.add(Table(["metric", "value"],
                          [[cell(Code(name)),
                            cell(fmt_metric(name, v), css="num", data_check=cid,
                                 data_metric=name)]
                           for name, v in figs]))
        if r["dod"]:
            doc.add(Heading(3, "Definition of Done"))
            doc.add(Table(["criterion", "expected", "measured", "result"],
                          [[cell(str(d.get("criterion", ""))), cell(str(d.get("expected", ""))),
                            cell(str(d.get("measured", ""))),
                            status_cell("pass" if d.get("pass") else "fail")]
                           for d in r["dod"]]))
        chart = CHART_FOR_CHECK.get(cid)
        if chart and chart in summary["charts"]:
            doc.add(Para([Text("Chart: "), Link(summary["charts"][chart], summary["charts"][chart])]))
            doc.add(Image(CHART_TITLES[chart], summary["charts"][chart]))

    # Charts whose check is absent from the run
    orphan = [k for k in summary["charts"] if CHART_FOR_CHECK.get(k) not in
              {r["check"] for r in summary["checks"]}]
    if orphan:
        doc.add(Heading(2, "Other charts", "charts"))
        for k in orphan:
            doc.add(Para([Link(summary["charts"][k], summary["charts"][k])]))
            doc.add(Image(CHART_TITLES[k], summary["charts"][k]))

    # DoD status table
    doc.add(Heading(2, "Definition of Done status", "dod"))
    drows = []
    for r in summary["checks"]:
        total = len(r["dod"])
        ok = total - len(r["dod_failed"])
        failed_spans: list = []
        for i, name in enumerate(r["dod_failed"]):
            if i:
                failed_spans.append(Text("; "))
            failed_spans.append(Text(name))
        drows.append([cell(r["check"]), status_cell(r["status"]), cell(f"{ok}/{total}"),
                      cell(failed_spans or [Text("none")])])
    doc.add(Table(["check", "status", "DoD lines passed", "failed DoD lines"], drows))

    # Performance
    if summary["performance"]:
        doc.add(Heading(2, "Performance", "performance"))
        doc.add(Table(["criterion", "expected", "measured", "status", "reference procedure"],
                      [[cell(p["criterion"]), cell(p["expected"] or "n/a"),
                        cell(p["measured"], css="num"), status_cell(p["status"]),
                        cell(p["reference"] or "n/a")]
                       for p in summary["performance"]]))

    # Environment
    doc.add(Heading(2, "Environment", "environment"))
    env = _manifest_env(summary["environment"])
    if summary["environment"] is None:
        doc.add(Para([Text("manifest.json is missing from the run folder; "
                           "the environment is unknown.")]))
    elif not env:
        doc.add(Para([Text("manifest.json names none of the known environment fields.")]))
    else:
        doc.add(Table(["setting", "value"], [[cell(k), cell(_env_value_spans(v))]
                                              for k, v in env]))

    if summary["warnings"]:
        doc.add(Heading(2, "Warnings", "warnings"))
        doc.add(Bullets([[Text(w)] for w in summary["warnings"]]))

    # Conclusion
    doc.add(Heading(2, "Conclusion", "conclusion"))
    doc.add(Bullets([[Text(line)] for line in summary["conclusion"]]))
    return doc


# --------------------------------------------------------------------------------------
# Markdown
# --------------------------------------------------------------------------------------

def _md_escape(s: str, in_table: bool) -> str:
    # Only what would change the rendering: intraword underscores and "<=" stay readable.
    s = s.replace("\\", "\\\\")
    for ch in "*`[]":
        s = s.replace(ch, "\\" + ch)
    s = re.sub(r"<(?=[A-Za-z/!?])", r"\\<", s)
    s = re.sub(r"(^|\s)_|_($|\s)", lambda m: m.group(0).replace("_", "\\_"), s)
    if in_table:
        s = s.replace("|", "\\|").replace("\n", " ")
    return s


def _md_spans(spans: list, in_table: bool = False) -> str:
    out = []
    for s in spans:
        if isinstance(s, Code):
            t = s.text.replace("\n", " ")
            if in_table:
                t = t.replace("|", "\\|")
            fence = "``" if "`" in t else "`"
            out.append(f"{fence}{t}{fence}")
        elif isinstance(s, Strong):
            out.append(f"**{_md_escape(s.text, in_table)}**")
        elif isinstance(s, Link):
            out.append(f"[{_md_escape(s.label, in_table)}]({s.href})")
        else:
            out.append(_md_escape(s.text, in_table))
    return "".join(out)


def render_markdown(doc: Doc) -> str:
    out: list[str] = []
    for b in doc.blocks:
        if isinstance(b, Heading):
            out.append("#" * b.level + " " + _md_escape(b.text, False))
        elif isinstance(b, Para):
            out.append(_md_spans(b.spans))
        elif isinstance(b, Table):
            out.append("| " + " | ".join(b.headers) + " |")
            out.append("|" + "|".join("---" for _ in b.headers) + "|")
            for row in b.rows:
                out.append("| " + " | ".join(_md_spans(c.spans, True) for c in row) + " |")
        elif isinstance(b, Bullets):
            out.append("\n".join("- " + _md_spans(item) for item in b.items))
        elif isinstance(b, Image):
            out.append(f"![{_md_escape(b.alt, False)}]({b.src})")
        out.append("")
    return "\n".join(out).rstrip() + "\n"


# --------------------------------------------------------------------------------------
# JUnit XML (Ant/Jenkins schema: properties, testcase*, system-out, system-err)
# --------------------------------------------------------------------------------------

def _junit_timestamp(checks: list[dict[str, Any]], manifest: dict[str, Any] | None) -> str:
    cands = [c.get("started_at") for c in checks] + [
        (manifest or {}).get(k) for k in ("started_at", "created_at")]
    for s in cands:
        if not s:
            continue
        try:
            t = _dt.datetime.fromisoformat(str(s).replace("Z", "+00:00"))
        except ValueError:
            continue
        if t.tzinfo is not None:
            t = t.astimezone(_dt.timezone.utc).replace(tzinfo=None)
        return t.strftime("%Y-%m-%dT%H:%M:%S")
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")


def _junit_hostname(manifest: dict[str, Any] | None) -> str:
    m = manifest or {}
    host = m.get("host")
    if isinstance(host, dict):
        host = host.get("hostname") or host.get("name")
    host = host or m.get("hostname")
    return str(host).strip() if host and str(host).strip() else "localhost"


def _xml_text(s: str) -> str:
    """Drop characters XML 1.0 cannot carry."""
    return "".join(ch for ch in s if ch in "\t\n\r" or (ord(ch) >= 0x20 and ord(ch) not in
                                                        (0xFFFE, 0xFFFF) and not 0xD800 <= ord(ch) <= 0xDFFF))


def _secs(v: Any) -> str:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return "0.000"
    return f"{f:.3f}" if math.isfinite(f) and f >= 0 else "0.000"


def render_junit(summary: dict[str, Any], checks: dict[str, dict[str, Any]]) -> bytes:
    rows = summary["checks"]
    manifest = summary["environment"]
    suite = ET.Element("testsuite", {
        "name": "llmops",
        "timestamp": _junit_timestamp(list(checks.values()), manifest),
        "hostname": _xml_text(_junit_hostname(manifest)),
        "tests": str(len(rows)),
        "failures": str(sum(1 for r in rows if r["status"] == "fail" or
                            (r["restore_failed"] and r["status"] != "error"))),
        "errors": str(sum(1 for r in rows if r["status"] == "error")),
        "skipped": str(sum(1 for r in rows if r["status"] == "skipped" and not r["restore_failed"])),
        "time": _secs(sum(float(r["duration_s"] or 0) for r in rows
                          if isinstance(r["duration_s"], (int, float)))),
    })
    props = ET.SubElement(suite, "properties")
    for name, value in [("run_id", summary["run_id"]), ("status", summary["status"]),
                        ("exit_code", str(summary["exit_code"])),
                        ("llmops_version", summary["tool_version"])] + \
            [(re.sub(r"[^a-z0-9]+", "_", k.lower()).strip("_"), _short(v) if not isinstance(v, (dict, list))
              else json.dumps(v, sort_keys=True, default=str))
             for k, v in _manifest_env(manifest)]:
        ET.SubElement(props, "property", {"name": name, "value": _xml_text(str(value))})
    for r in rows:
        cid = r["check"]
        tc = ET.SubElement(suite, "testcase", {
            "name": cid, "classname": f"llmops.{CHECK_FILES[cid]}", "time": _secs(r["duration_s"])})
        c = checks[cid]
        body = "\n".join(
            f"[{'PASS' if d.get('pass') else 'FAIL'}] {d.get('criterion', '')}: expected "
            f"{d.get('expected', '')}, measured {d.get('measured', '')}" for d in c["dod"])
        body += "\n" + "\n".join(f"{n} = {fmt_metric(n, v)}" for n, v in flatten_metrics(c["metrics"]))
        if r["status"] == "error":
            msg = r["reason"] or "the check errored"
            if r["restore_failed"]:
                msg = "RESTORE FAILED: the stack was left degraded; " + msg
            el = ET.SubElement(tc, "error", {"type": "CheckError", "message": _xml_text(msg)})
            el.text = _xml_text(body.strip())
        elif r["status"] == "fail" or r["restore_failed"]:
            bad = _failed_dod(c)
            parts = []
            if r["restore_failed"]:
                parts.append("RESTORE FAILED: the stack was left degraded")
            if bad:
                parts.append("failed DoD: " + "; ".join(_dod_phrase(d) for d in bad))
            elif r["status"] == "fail":
                parts.append("check failed, no DoD line marked failed")
            el = ET.SubElement(tc, "failure", {
                "type": "RestoreFailed" if r["restore_failed"] else "DoDFailed",
                "message": _xml_text("; ".join(parts))})
            el.text = _xml_text(body.strip())
        elif r["status"] == "skipped":
            ET.SubElement(tc, "skipped", {"message": _xml_text(r["reason"] or "skipped")})
    out = ET.SubElement(suite, "system-out")
    out.text = _xml_text("\n".join(summary["conclusion"]))
    ET.SubElement(suite, "system-err").text = _xml_text("\n".join(summary["warnings"]))
    ET.indent(suite)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suite, encoding="utf-8") + b"\n"


# --------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------

@dataclass
class ReportResult:
    run_dir: Path
    status: str                      # pass | fail | skipped | error
    exit_code: int                   # 0, 1, 3 or 5, aggregated as DESIGN says
    summary_md: Path
    summary_html: Path
    summary_json: Path
    junit_xml: Path
    charts: dict[str, Path] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    conclusion: list[str] = field(default_factory=list)

    @property
    def paths(self) -> list[Path]:
        return [self.summary_md, self.summary_html, self.summary_json, self.junit_xml,
                *self.charts.values()]


def render_report(run_dir: Path, *, charts: bool = True) -> ReportResult:
    """Render summary.md/.html/.json, junit.xml and charts into ``run_dir`` from its files.

    ``run_dir`` may be the ``latest`` link.  Raises :class:`ReportError` (exit 2) when the
    folder is missing or holds no check files.  ``charts=False`` skips matplotlib.
    """
    given = Path(run_dir)
    if not given.exists():
        raise ReportError(f"run folder not found: {given}")
    if not given.is_dir():
        raise ReportError(f"not a run folder: {given}")
    run = given.resolve()
    checks = _load_checks(run)
    if not checks:
        raise ReportError(f"no check files (01_services_status.json ... 06_gpu_memory.json) "
                          f"in {given}")
    warnings: list[str] = []
    manifest = _read_manifest(run, warnings)

    chart_files: dict[str, str] = {}
    chart_paths: dict[str, Path] = {}
    for name, fname in CHART_FILES.items():      # never leave a stale chart from an older render
        p = run / fname
        if p.exists():
            p.unlink()
    if charts:
        events = _read_events_tolerant(run, warnings)
        if events:
            from llmops import report_charts
            expected = (checks.get("gpu") or {}).get("metrics", {}).get("expected_mib")
            total = (checks.get("gpu") or {}).get("metrics", {}).get("total_mib")
            made = report_charts.render_all(events, run, CHART_FILES,
                                            expected_mib=expected, total_mib=total,
                                            warnings=warnings)
            for name, path in made.items():
                chart_files[name] = path.name
                chart_paths[name] = path

    summary = build_summary(run, checks, manifest, chart_files, warnings)
    doc = build_doc(summary)

    md_path = run / SUMMARY_MD
    md_path.write_text(render_markdown(doc), encoding="utf-8")
    from llmops import report_html
    html_path = run / SUMMARY_HTML
    html_path.write_text(report_html.render_html(doc, run), encoding="utf-8")
    json_path = run / SUMMARY_JSON
    json_path.write_text(json.dumps(summary, indent=2, default=str) + "\n", encoding="utf-8")
    junit_path = run / JUNIT_XML
    junit_path.write_bytes(render_junit(summary, checks))

    return ReportResult(run_dir=run, status=summary["status"], exit_code=summary["exit_code"],
                        summary_md=md_path, summary_html=html_path, summary_json=json_path,
                        junit_xml=junit_path, charts=chart_paths, warnings=warnings,
                        conclusion=summary["conclusion"])
