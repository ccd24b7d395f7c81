"""Rendering one run folder: summary.md, summary.html, summary.json, junit.xml and charts.

Everything is rendered from the run folder's files only: the check JSON files,
``events.ndjson`` (for the charts) and ``manifest.json`` (for the environment).  Nothing
is re-run and nothing is re-measured.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from .charts import CHART_FILES
from .content import build_doc
from .html import render_html
from .inputs import ReportError, load_run_checks, read_events_tolerant, read_manifest
from .junit import render_junit
from .markdown import render_markdown
from .summary import build_summary

SUMMARY_MD = "summary.md"
SUMMARY_HTML = "summary.html"
SUMMARY_JSON = "summary.json"
JUNIT_XML = "junit.xml"


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
    checks = load_run_checks(run)
    if not checks:
        raise ReportError(f"no check files (01_services_status.json ... 06_gpu_memory.json) "
                          f"in {given}")
    warnings: list[str] = []
    manifest = read_manifest(run, warnings)

    chart_files: dict[str, str] = {}
    chart_paths: dict[str, Path] = {}
    for name, fname in CHART_FILES.items():      # never leave a stale chart from an older render
        p = run / fname
        if p.exists():
            p.unlink()
    if charts:
        events = read_events_tolerant(run, warnings)
        if events:
            from . import charts as report_charts    # imports matplotlib only when drawing
            expected = (checks.get("gpu") or {}).get("metrics", {}).get("expected_mib")
            total = (checks.get("gpu") or {}).get("metrics", {}).get("total_mib")
            made = report_charts.render_all(events, run, CHART_FILES,
                                            expected_mib=expected, total_mib=total,
                                            warnings=warnings, failover_check=checks.get("failover"))
            for name, path in made.items():
                chart_files[name] = path.name
                chart_paths[name] = path

    summary = build_summary(run, checks, manifest, chart_files, warnings)
    doc = build_doc(summary)

    md_path = run / SUMMARY_MD
    md_path.write_text(render_markdown(doc), encoding="utf-8")
    html_path = run / SUMMARY_HTML
    html_path.write_text(render_html(doc, run), encoding="utf-8")
    json_path = run / SUMMARY_JSON
    json_path.write_text(json.dumps(summary, indent=2, default=str) + "\n", encoding="utf-8")
    junit_path = run / JUNIT_XML
    junit_path.write_bytes(render_junit(summary, checks))

    return ReportResult(run_dir=run, status=summary["status"], exit_code=summary["exit_code"],
                        summary_md=md_path, summary_html=html_path, summary_json=json_path,
                        junit_xml=junit_path, charts=chart_paths, warnings=warnings,
                        conclusion=summary["conclusion"])
