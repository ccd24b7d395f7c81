"""The report's content: the document built from the summary (checks, DoD, figures, charts) and
from manifest.json (the environment).  Rendering it is :mod:`.markdown`'s and :mod:`.html`'s job."""

from __future__ import annotations

import json
from typing import Any, Iterable

from ..evidence import CHECK_FILES, JsonObject
from ..manifest import Manifest

from .model import (Bullets, Code, Doc, Heading, Image, Link, Para, Strong, Table, Text, cell, fmt,
                    fmt_metric, flatten_metrics, status_cell)

CHART_FOR_CHECK = {"failover": "failover", "qdrant": "qdrant", "gpu": "gpu"}
CHART_TITLES = {
    "failover": "Failover timeline: latency per request, coloured by serving backend",
    "qdrant": "rag /health latency and qdrant status across the Qdrant outage",
    "gpu": "GPU memory per service against the budget",
}


def environment_rows(manifest: JsonObject | None) -> list[tuple[str, Any]]:
    """The environment rows, in a fixed order, from manifest.json (read through :class:`Manifest`,
    the writer's own type, so a key the writer renames cannot silently drop a row)."""
    if manifest is None:
        return []
    m = Manifest.from_json(manifest)
    gpu = m.gpu
    router = (m.router or {}).get("router_settings")
    images = {n: " ".join(x for x in (i.image, f"({short(i.id)})" if i.id else None) if x) or "?"
              for n, i in m.images.items()}
    rows: list[tuple[str, Any]] = [
        ("Manifest error", m.manifest_error),     # first: the rows below may be missing because of it
        ("Tool version", m.version),
        ("Git SHA", m.git_sha),
        ("Profile", m.profile),
        ("Host", m.host.name),
        ("OS / platform", m.host.os),
        ("Kernel", " ".join(x for x in (m.host.kernel, m.host.machine) if x) or None),
        ("Compose project", m.project),
        ("Compose", m.compose_binary),
        ("Compose config hash", m.compose_config_hash),
        ("Docker", m.engine.docker),
        ("Docker API", m.engine.api),
        ("NVIDIA driver", gpu.driver_version if gpu else None),
        ("CUDA", gpu.cuda_driver_version if gpu else None),
        ("NVML", gpu.nvml_version if gpu else None),
        ("GPU", [d.label() for d in gpu.devices] or None if gpu else None),
        ("Images", images or None),
        ("Router settings", router if isinstance(router, dict) and router else None),
    ]
    return [(k, v) for k, v in rows if v is not None]


def _env_value_spans(v: Any) -> list:
    if isinstance(v, dict):
        return _join_code(f"{k}: {short(x)}" for k, x in v.items())
    if isinstance(v, list):
        return _join_code(short(x) for x in v)
    return [Code(fmt(v))]


def short(x: Any) -> str:
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


def _verdict(doc: Doc, summary: JsonObject) -> None:
    """The headline: result, exit code, what was not in the stack, availability, a failed restore."""
    status, code = summary["status"], summary["exit_code"]
    doc.add(Heading(1, doc.title))
    doc.add(Para([Text("Result: "), Strong(summary["headline"]),
                  Text(f", exit {code}: {summary['exit_meaning']}.")],
                 css=f"verdict status-{status}"))
    if summary.get("not_in_stack"):
        doc.add(Para([Strong("Not in this stack: " + ", ".join(summary["not_in_stack"]) + "."),
                      Text(" No service has these roles, so the checks that need them were not asked "
                           "for: neither failed nor skipped.")]))
    for a in summary.get("availability") or []:
        pct = "n/a" if a["availability_pct"] is None else f"{a['availability_pct']:g} %"
        doc.add(Para([Strong(f"Availability during {a['check']}:"),
                      Text(f" {pct} ({a['ok']} of {a['total']} requests answered 2xx).")]))
    if summary["restore_failed"]:
        doc.add(Para([Strong("RESTORE FAILED: the stack was left degraded by "
                             + ", ".join(summary["restore_failed"]) + "."),
                      Text(" Run "), Code("llmops chaos restore"), Text(".")], css="loud"))
    doc.add(Para([Text("Rendered from the run folder's JSON files only "
                       f"(generated {summary['generated_at']} by llmops {summary['tool_version']}); "
                       "nothing was re-run.")], css="muted"))


def _test_table(doc: Doc, summary: JsonObject) -> None:
    """One row per check, linking its evidence."""
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


def _check_sections(doc: Doc, summary: JsonObject) -> None:
    """One section per check: scenario, figures, its Definition of Done, its chart."""
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
            # The samples column is the line's evidence: how many observations it rests on, and
            # the fewest it may be judged on.
            doc.add(Table(["criterion", "expected", "measured", "samples", "result"],
                          [[cell(str(d.get("criterion", ""))), cell(str(d.get("expected", ""))),
                            cell(str(d.get("measured", ""))),
                            cell(f"{d.get('samples')} (needs {d.get('need')})", css="num"),
                            status_cell("pass" if d.get("pass") else "fail")]
                           for d in r["dod"]]))
        chart = CHART_FOR_CHECK.get(cid)
        if chart and chart in summary["charts"]:
            doc.add(Para([Text("Chart: "), Link(summary["charts"][chart], summary["charts"][chart])]))
            doc.add(Image(CHART_TITLES[chart], summary["charts"][chart]))


def _orphan_charts(doc: Doc, summary: JsonObject) -> None:
    """Charts whose check is absent from the run."""
    orphan = [k for k in summary["charts"] if CHART_FOR_CHECK.get(k) not in
              {r["check"] for r in summary["checks"]}]
    if orphan:
        doc.add(Heading(2, "Other charts", "charts"))
        for k in orphan:
            doc.add(Para([Link(summary["charts"][k], summary["charts"][k])]))
            doc.add(Image(CHART_TITLES[k], summary["charts"][k]))


def _dod_status(doc: Doc, summary: JsonObject) -> None:
    """Each check's DoD lines passed, and the failed ones by name."""
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


def _performance(doc: Doc, summary: JsonObject) -> None:
    """The performance lines beside the reference procedure."""
    if summary["performance"]:
        doc.add(Heading(2, "Performance", "performance"))
        doc.add(Table(["criterion", "expected", "measured", "status", "reference procedure"],
                      [[cell(p["criterion"]), cell(p["expected"] or "n/a"),
                        cell(p["measured"], css="num"), status_cell(p["status"]),
                        cell(p["reference"] or "n/a")]
                       for p in summary["performance"]]))


def _environment(doc: Doc, summary: JsonObject) -> None:
    """What the run ran on (manifest.json), and the warnings."""
    doc.add(Heading(2, "Environment", "environment"))
    env = environment_rows(summary["environment"])
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


def _conclusion(doc: Doc, summary: JsonObject) -> None:
    """The conclusion."""
    doc.add(Heading(2, "Conclusion", "conclusion"))
    doc.add(Bullets([[Text(line)] for line in summary["conclusion"]]))


def build_doc(summary: JsonObject) -> Doc:
    doc = Doc(f"llmops reliability report: {summary['run_id']}")
    for section in (_verdict, _test_table, _check_sections, _orphan_charts, _dod_status, _performance,
                    _environment, _conclusion):
        section(doc, summary)
    return doc
