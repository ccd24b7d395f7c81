"""llmops report: summary.md/.html/.json, junit.xml and charts, from a run folder's files only.

The fixture run folders are written through the real evidence writers (CheckResult, RunDir),
with realistic figures: the reference procedure's numbers where there is one.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import pytest

from llmops.evidence import CHECK_FILES, CheckResult, Criterion, RunDir
from llmops.report import (ReportError, check_exit_code, flatten_metrics, fmt, fmt_metric,
                           render_report)

DATA = Path(__file__).parent / "data"
ARTIFACTS = Path(__file__).parent / "artifacts"
XSD = DATA / "junit-ant.xsd"
T0 = "2025-06-01T10:00:00.000+00:00"


# ----------------------------------------------------------------------------- fixtures

def _check(check: str, metrics: dict, dod: list[Criterion], *, status: str | None = None,
           details: dict | None = None, duration: float = 1.0) -> CheckResult:
    return CheckResult(check=check, status=status or CheckResult.status_from(dod),
                       started_at=T0, duration_s=duration, metrics=metrics, dod=dod,
                       details=details or {})


def standard_checks(*, failover_fail: bool = False, restored: bool = True,
                    gpu: str = "pass") -> list[CheckResult]:
    failed = 3 if failover_fail else 0
    out = [
        _check("status", {"services_total": 6, "services_healthy": 6},
               [Criterion("all services Up (healthy)", "6/6", "6/6", True)], duration=0.412),
        _check("functional", {"gateway_backend": "inference-chat", "completion_latency_s": 0.873,
                              "rag_hits": 3},
               [Criterion("completion through gateway", "HTTP 200", "HTTP 200 in 0.873 s", True),
                Criterion("rag_hits", ">= 1", "3", True)], duration=1.734),
        _check("health", {"endpoints_total": 6, "endpoints_ok": 6, "wall_s": 0.061,
                          "sum_latency_s": 0.2375},
               [Criterion("endpoints_ok", "6/6 HTTP 200", "6/6", True)], duration=0.07),
        _check("failover", {"failover_time_s": 0.842, "failover_penalty_s": 0.118,
                            "failed_requests": failed, "total_requests": 412,
                            "served_by_secondary": 131, "failback_time_s": 2.307,
                            "restored": restored},
               [Criterion("failover_time_s", "<= 5 s", "0.842 s", True),
                Criterion("failed_requests", "0", str(failed), not failover_fail),
                Criterion("primary restored and healthy", "true", str(restored).lower(), restored)],
               details={"restored": restored, "primary": "inference-chat",
                        "secondary": "inference-code"}, duration=48.25),
        _check("qdrant", {"degraded_health_latency_s": 0.014, "outage_query_status": 503,
                          "reconnect_time_s": 1.62, "points_before": 120, "points_after": 120,
                          "restored": True},
               [Criterion("degraded_health_latency_s", "< 1 s", "0.014 s", True),
                Criterion("reconnect_time_s", "< 30 s", "1.62 s", True),
                Criterion("points_before == points_after", "120", "120", True)],
               details={"restored": True}, duration=27.9),
    ]
    if gpu == "pass":
        out.append(_check("gpu", {"total_mib": 8192, "used_mib": 5374, "expected_mib": 5325,
                                  "error_pct": 0.92, "peak_used_mib": 5402,
                                  "per_service": {"inference-chat": 4420, "inference-code": 812,
                                                  "embedding": 142}},
                          [Criterion("error_pct", "|error| <= 10%", "+0.92%", True),
                           Criterion("peak_used_mib", "<= 8192 MiB", "5402 MiB", True)],
                          details={"nvml_api": "v2"}, duration=5.0))
    elif gpu == "skipped":
        out.append(CheckResult("gpu", "skipped", T0, 0.003, {}, [],
                               {"reason": "no GPU: NVML could not be initialised"}))
    return out


MANIFEST = {
    "tool_version": "0.1.0", "git_sha": "3f2c1e9a7b", "profile": "cpu",
    "host": {"hostname": "bench-01", "os": "Linux 6.1.0 x86_64"},
    "compose_project": "llmops", "compose_config_hash": "sha256:9a1b2c",
    "images": {"inference-chat": "sha256:" + "a" * 64, "qdrant": "sha256:" + "b" * 64},
    "driver_version": "550.54.15", "cuda_version": "12.4",
    "router_settings": {"routing_strategy": "simple-shuffle", "num_retries": 2,
                        "allowed_fails": 1, "cooldown_time": 30, "timeout": 10},
}


def write_events(run: RunDir) -> None:
    """A failover phase (5 req/s, fault at 10 s, restore at 25 s), a Qdrant phase, GPU samples."""
    for i in range(120):
        t = 2.0 + i * 0.25
        backend, lat, status, err = "inference-chat", 0.6 + 0.05 * math.sin(i), 200, None
        if 10.0 <= t < 27.0:
            backend, lat = "inference-code", 0.7 + 0.04 * math.cos(i)
        if 10.0 <= t < 10.8:
            lat += 0.118
        run.event("request", t=t, latency_s=round(lat, 4), status=status, backend=backend,
                  error=err)
    run.event("fault", t=10.0, phase="failover", action="stop inference-chat")
    run.event("restore", t=25.0, phase="failover", action="start inference-chat")
    for i in range(40):
        t = 40.0 + i * 0.5
        down = 45.0 <= t < 55.6
        run.event("rag_health", t=t, latency_s=0.012 if not down else 0.014,
                  qdrant=not down, status_code=200)
    run.event("fault", t=45.0, phase="qdrant", action="stop qdrant")
    run.event("restore", t=54.0, phase="qdrant", action="start qdrant")
    for i in range(30):
        t = 61.0 + i * 0.2
        run.event("gpu_sample", t=t, used_mib=5374 + (i % 5) * 7,
                  per_service={"inference-chat": 4420, "inference-code": 812 + (i % 5) * 7,
                               "embedding": 142})


def make_run(root: Path, name: str, checks: list[CheckResult], *, events: bool = True,
             manifest: bool = True) -> Path:
    run = RunDir(root / name, t0=0.0)
    for c in checks:
        run.write_check(c, f"{c.check} evidence, as people read it")
    if manifest:
        run.write_json("manifest.json", MANIFEST)
    if events:
        write_events(run)
    run.close()
    if not events:
        (run.path / "events.ndjson").unlink()
    return run.path


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    """All six checks, all passing, with events: rendered once for the module (charts are slow)."""
    path = make_run(tmp_path_factory.mktemp("report"), "full", standard_checks())
    return path, render_report(path)


# ----------------------------------------------------------------------------- helpers

class _Cells(HTMLParser):
    """Collects the text of every <td data-metric=...> cell, and all visible text."""

    def __init__(self) -> None:
        super().__init__()
        self.metrics: dict[tuple[str, str], str] = {}
        self._cur: tuple[str, str] | None = None
        self._buf: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "td" and "data-metric" in a:
            self._cur, self._buf = (a["data-check"], a["data-metric"]), []

    def handle_endtag(self, tag):
        if tag == "td" and self._cur is not None:
            self.metrics[self._cur] = "".join(self._buf)
            self._cur = None

    def handle_data(self, data):
        self.text.append(data)
        if self._cur is not None:
            self._buf.append(data)


def _numeric_metrics(run_dir: Path):
    """(check, metric name, value) for every numeric metric in every check JSON, nested too."""
    for cid, stem in CHECK_FILES.items():
        p = run_dir / f"{stem}.json"
        if not p.exists():
            continue
        for name, v in flatten_metrics(json.loads(p.read_text())["metrics"]):
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                yield cid, name, v


# ----------------------------------------------------------------------------- tests

def test_fmt_is_one_stable_format():
    assert fmt(1.15) == "1.15"
    assert fmt(5374) == "5374"
    assert fmt(5374.0) == "5374"
    assert fmt(0.8424) == "0.842"
    assert fmt(0.0004) == "0.0004"
    assert fmt(0) == "0" and fmt(0.0) == "0"
    assert fmt(True) == "true" and fmt(None) == "n/a"
    assert fmt_metric("failover_time_s", 1.15) == "1.15 s"
    assert fmt_metric("used_mib", 5374) == "5374 MiB"
    assert fmt_metric("per_service.inference-chat", 4420) == "4420 MiB"
    assert fmt_metric("error_pct", 0.92) == "+0.92%"
    assert fmt_metric("error_pct", -1.5) == "-1.5%"


def test_summary_figures_are_the_json_numbers(full_run):
    """Every numeric metric in every check JSON appears, formatted identically, in md and html."""
    run_dir, res = full_run
    md = res.summary_md.read_text()
    parser = _Cells()
    parser.feed(res.summary_html.read_text())
    seen = 0
    for cid, name, v in _numeric_metrics(run_dir):
        shown = fmt_metric(name, v)
        assert fmt(v) in shown
        # Markdown: the figures row of this metric, in this check's section.
        section = md.split(f"## {CHECK_FILES[cid][:2]} ", 1)[1].split("\n## ", 1)[0]
        assert f"| `{name}` | {shown} |" in section, (cid, name, shown)
        # HTML: the cell tagged with this check and metric.
        assert parser.metrics[(cid, name)] == shown, (cid, name)
        seen += 1
    assert seen == 27   # 2 + 2 + 4 + 6 + 5 + (5 + 3 per_service); bools and strings excluded
    # Strings and bools are shown as in the JSON too.
    assert "| `gateway_backend` | inference-chat |" in md
    assert parser.metrics[("failover", "restored")] == "true"


def test_summary_md_reads_like_the_reference(full_run):
    run_dir, res = full_run
    md = res.summary_md.read_text()
    assert res.exit_code == 0 and res.status == "pass"
    # test table: check, result, evidence file
    assert "| # | check | result | evidence file |" in md
    assert "[04_failover_test.txt](04_failover_test.txt)" in md
    for stem in CHECK_FILES.values():
        assert f"## {stem[:2]} " in md
    assert "**Scenario.**" in md and "### Definition of Done" in md
    assert "## Definition of Done status" in md
    # performance table with the reference procedure's figures
    assert "| criterion | expected | measured | status | reference procedure |" in md
    assert "| 0.842 s | PASS | 1.15 s, HTTP 200 |" in md
    assert "| 6/6 | PASS | 6/6 services Up (healthy) |" in md
    assert "6/6 returned 200" in md and "4 s to say qdrant:false" in md
    assert "5374 MiB vs 5325 MiB expected (+0.92%)" in md
    assert "5374 MiB vs 5325 MiB expected (+0.9%)" in md      # the reference's figure
    # environment from manifest.json
    for needle in ("0.1.0", "3f2c1e9a7b", "cpu", "bench-01", "550.54.15", "12.4",
                   "routing_strategy: simple-shuffle", "sha256:aaaaaaaaaaaa"):
        assert needle in md, needle
    assert "## Conclusion" in md and "All 6 checks that ran passed." in md
    assert "Exit code 0" in md


def test_summary_json_is_the_machine_form(full_run):
    run_dir, res = full_run
    s = json.loads(res.summary_json.read_text())
    assert s["status"] == "pass" and s["exit_code"] == 0
    assert [c["check"] for c in s["checks"]] == list(CHECK_FILES)
    assert s["counts"] == {"pass": 6, "fail": 0, "skipped": 0, "error": 0, "total": 6}
    for c in s["checks"]:
        on_disk = json.loads((run_dir / c["file"]).read_text())
        assert c["metrics"] == on_disk["metrics"] and c["dod"] == on_disk["dod"]
    assert s["environment"]["profile"] == "cpu"
    assert set(s["charts"]) == {"failover", "qdrant", "gpu"}
    perf = {p["criterion"]: p for p in s["performance"]}
    assert perf["Failover time (fault to first reply from the secondary)"]["reference"] == \
        "1.15 s, HTTP 200"


def test_junit_validates_one_testcase_per_check(full_run, tmp_path):
    xmlschema = pytest.importorskip("xmlschema")
    schema = xmlschema.XMLSchema(str(XSD))
    _, res = full_run
    schema.validate(str(res.junit_xml))
    doc = schema.to_dict(str(res.junit_xml))
    assert [tc["@name"] for tc in doc["testcase"]] == list(CHECK_FILES)
    assert doc["@tests"] == 6 and doc["@failures"] == 0

    # a mixed run: fail, restore failure, skipped, error
    checks = standard_checks(failover_fail=True, gpu="skipped")
    checks[2] = CheckResult("health", "error", T0, 0.2, {}, [], {"error": "connection refused"})
    path = make_run(tmp_path, "mixed", checks, events=False, manifest=False)
    r = render_report(path, charts=False)
    schema.validate(str(r.junit_xml))
    d = schema.to_dict(str(r.junit_xml))
    cases = {tc["@name"]: tc for tc in d["testcase"]}
    assert list(cases) == list(CHECK_FILES)
    assert "failed_requests" in cases["failover"]["failure"]["@message"]
    assert cases["gpu"]["skipped"]["@message"].startswith("no GPU")
    assert cases["health"]["error"]["@message"] == "connection refused"
    assert (d["@failures"], d["@errors"], d["@skipped"]) == (1, 1, 1)
    assert d["@hostname"] == "localhost"


def test_failed_check_exits_1_and_conclusion_names_the_dod_line(tmp_path):
    path = make_run(tmp_path, "fail", standard_checks(failover_fail=True), events=False)
    r = render_report(path, charts=False)
    assert (r.exit_code, r.status) == (1, "fail")
    md = r.summary_md.read_text()
    conclusion = md.split("## Conclusion", 1)[1]
    assert "failover FAILED" in conclusion
    assert '"failed_requests" (expected 0, measured 3)' in conclusion
    s = json.loads(r.summary_json.read_text())
    assert s["failed_dod"][0]["criterion"] == "failed_requests"
    assert s["checks"][3]["dod_failed"] == ["failed_requests"]


def test_restore_false_exits_5_even_with_other_failures(tmp_path):
    checks = standard_checks(restored=False, gpu="skipped")
    checks[1] = _check("functional", {"gateway_backend": None, "completion_latency_s": None,
                                      "rag_hits": 0},
                       [Criterion("rag_hits", ">= 1", "0", False)])
    path = make_run(tmp_path, "restore", checks, events=False)
    r = render_report(path, charts=False)
    assert r.exit_code == 5 and r.status == "fail"
    md = r.summary_md.read_text()
    assert "RESTORE FAILED" in md.split("## Conclusion", 1)[1]
    assert md.index("RESTORE FAILED") < md.index("## Tests")     # loudest: at the top
    # restored=false in details alone, with status pass, still counts as 5
    c = CheckResult("qdrant", "pass", T0, 1.0, {}, [], {"restored": False}).to_json()
    assert check_exit_code(c) == 5


def test_skipped_gpu_alone_exits_3_only_if_nothing_failed(tmp_path):
    r = render_report(make_run(tmp_path, "skip", standard_checks(gpu="skipped"), events=False),
                      charts=False)
    assert (r.exit_code, r.status) == (3, "skipped")
    assert "gpu was skipped: no GPU" in r.summary_md.read_text()
    r2 = render_report(make_run(tmp_path, "skipfail",
                                standard_checks(gpu="skipped", failover_fail=True),
                                events=False), charts=False)
    assert r2.exit_code == 1


def test_charts_are_pngs_when_data_present_and_absent_otherwise(full_run, tmp_path):
    run_dir, res = full_run
    assert set(res.charts) == {"failover", "qdrant", "gpu"}
    md = res.summary_md.read_text()
    for name in ("chart_failover.png", "chart_qdrant.png", "chart_gpu.png"):
        p = run_dir / name
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 5000
        assert f"]({name})" in md
    # only GPU samples: one chart; and no events at all: none, and no links
    only = make_run(tmp_path, "gpuonly", standard_checks(), events=False)
    run = RunDir(only, t0=0.0)
    run.event("gpu_sample", t=1.0, used_mib=5374, per_service={"inference-chat": 4420})
    run.close()
    r = render_report(only)
    assert set(r.charts) == {"gpu"}
    assert not (only / "chart_failover.png").exists() and not (only / "chart_qdrant.png").exists()
    (only / "events.ndjson").unlink()
    r = render_report(only)
    assert r.charts == {} and not list(only.glob("chart_*.png"))
    assert ".png" not in r.summary_md.read_text()


def test_html_is_self_contained(full_run):
    _, res = full_run
    html = res.summary_html.read_text()
    assert html.count('src="data:image/png;base64,') == 3
    assert "<style>" in html and "<link" not in html and "<script" not in html
    assert not re.search(r'(src|href)="(https?:)?//', html)


def test_bad_input_is_a_report_error(tmp_path):
    with pytest.raises(ReportError):
        render_report(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ReportError, match="no check files"):
        render_report(tmp_path / "empty")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "01_services_status.json").write_text("{not json")
    with pytest.raises(ReportError) as e:
        render_report(bad)
    assert e.value.exit_code == 2


def test_truncated_events_line_is_tolerated(tmp_path):
    path = make_run(tmp_path, "trunc", standard_checks(gpu="skipped"), events=False)
    (path / "events.ndjson").write_text(
        '{"t": 1.0, "kind": "rag_health", "latency_s": 0.01, "qdrant": true, "status_code": 200}\n'
        '{"t": 1.5, "kind": "rag_he')
    r = render_report(path)
    assert set(r.charts) == {"qdrant"}
    assert any("unreadable" in w for w in r.warnings)


def test_importing_report_does_not_import_matplotlib():
    code = "import sys, llmops.report; assert 'matplotlib' not in sys.modules, 'imported'"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# ----------------------------------------------------------------------------- chromium

def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        p = shutil.which(name)
        if p:
            return p
    return None


def test_html_renders_in_headless_chromium(full_run):
    """Render summary.html in headless Chromium; the screenshot must be a real, non-blank PNG."""
    exe = _chromium()
    if exe is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    from PIL import Image, ImageStat

    run_dir, res = full_run
    shot = run_dir / "summary_html_screenshot.png"
    with tempfile.TemporaryDirectory() as profile:
        cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
               "--no-first-run", "--disable-background-networking", "--disable-component-update",
               "--disable-sync", "--hide-scrollbars", f"--user-data-dir={profile}",
               f"--screenshot={shot}", "--window-size=1280,2000",
               res.summary_html.resolve().as_uri()]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                              env={**os.environ, "HOME": profile})
    assert shot.exists(), f"no screenshot; rc={proc.returncode}\n{proc.stderr[-2000:]}"
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(shot) as im:
        im.load()
        assert im.size == (1280, 2000)
        grey = im.convert("L")
        var = ImageStat.Stat(grey).var[0]
        colours = len(im.convert("RGB").resize((320, 500)).getcolors(maxcolors=1 << 20) or [])
    assert var > 100, f"screenshot looks blank (variance {var:.1f})"
    assert colours > 50, f"screenshot has only {colours} colours"
    ARTIFACTS.mkdir(exist_ok=True)
    kept = ARTIFACTS / "report_summary_html_chromium.png"
    shutil.copyfile(shot, kept)
    print(f"\nchromium screenshot: {shot}\ncopied to: {kept}")


def test_latest_link_is_followed(tmp_path):
    run = RunDir.create(tmp_path / "evidence", "20250601-100000")
    for c in standard_checks(gpu="none"):
        run.write_check(c, "text")
    run.close()
    r = render_report(tmp_path / "evidence" / "latest", charts=False)
    assert r.run_dir == run.path.resolve() and r.exit_code == 0
    assert (run.path / "summary.md").exists() and (run.path / "junit.xml").exists()
    assert json.loads(r.summary_json.read_text())["not_run"] == ["gpu"]
