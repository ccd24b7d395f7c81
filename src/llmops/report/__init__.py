"""The run report: summary.md, summary.html, summary.json, junit.xml and charts, rendered from a
run folder's files only.

model (document blocks, number format) <- summary (verdict, summary.json) <- content (the
document) <- markdown, html, junit; charts draws the PNGs (matplotlib only when drawing);
render ties them together for one run folder.
"""

from .charts import CHART_FILES
from .inputs import ReportError
from .model import flatten_metrics, fmt, fmt_metric
from .render import JUNIT_XML, SUMMARY_HTML, SUMMARY_JSON, SUMMARY_MD, ReportResult, render_report
from .summary import build_summary, check_exit_code, restore_failed

__all__ = [
    "ReportError", "ReportResult", "render_report", "build_summary", "fmt", "fmt_metric",
    "check_exit_code", "restore_failed", "flatten_metrics", "SUMMARY_MD", "SUMMARY_HTML",
    "SUMMARY_JSON", "JUNIT_XML", "CHART_FILES",
]
