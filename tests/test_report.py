"""llmops report: summary.md/.html/.json, junit.xml and charts, from a run folder's files only.

Every run folder rendered here is written by the real producers, never by hand:
- 01 status: ``checks.status_result`` over ``stack.service_from_attrs`` applied to the six
  containers' ``docker inspect`` attributes recorded from a real cpu stack (tests/data);
- 03 health: ``checks.health_result`` over ``probes.ProbeResult`` records;
- 04 failover: ``chaos.timeline.analyse``/``per_second`` and ``chaos.failover.failover_dod``/
  ``failover_text`` over ``loadgen.Request`` records, with the events ``run_failover`` writes;
- 06 gpu: ``gpu.check.run_gpu_report`` with the fake NVML of ``llmops/testing/nvml.py``;
- 02 functional and 05 qdrant: the evidence files a real ``llmops verify`` and ``llmops chaos
  qdrant`` wrote against a real cpu stack (tests/data/recorded, re-record with
  tests/data/record_report_fixtures.py): their producers need live HTTP services;
- manifest.json: ``manifest.collect``, the function behind ``Context.manifest()``, over the
  recorded ``docker version`` and inspect shapes.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from llmops.chaos.failover import failover_dod, failover_text
from llmops.chaos.loadgen import Request
from llmops.chaos.timeline import Marks, analyse, availability_pct, per_second
from llmops.checks import health_result, health_text, status_result, status_text
from llmops.compose import Compose
from llmops.evidence import CHECK_FILES, CheckResult, Criterion, RunDir
from llmops.gpu.check import GpuReportOptions, run_gpu_report
from llmops.testing.nvml import NVML_ERROR_DRIVER_NOT_LOADED, FakeClock, FakeGpu, FakeNvml
from llmops.manifest import Manifest, Sources, collect
from llmops.probes import ProbeResult
from llmops.report import (ReportError, check_exit_code, flatten_metrics, fmt, fmt_metric,
                           render_report)
from llmops.stack import Service, service_from_attrs

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).parent / "data"
RECORDED = DATA / "recorded"
ARTIFACTS = Path(__file__).parent / "artifacts"
XSD = DATA / "junit-ant.xsd"
T0 = "2026-11-26T10:00:00.000+00:00"
CLOCK0 = 1000.0          # the run's monotonic origin (the GPU check's FakeClock starts here)
PRIMARY, SECONDARY = "inference-chat", "inference-code"


# ----------------------------------------------------------------------------- real producers

def recorded_stack() -> dict[str, Any]:
    """`docker version` and `docker inspect` of the six containers of a real cpu stack."""
    return json.loads((DATA / "cpu_stack_inspect.json").read_text())


def stack_services() -> list[Service]:
    return [service_from_attrs(a) for a in recorded_stack()["containers"]]


class RecordedEngine:
    """The Docker SDK calls manifest.collect makes, answered from the recorded real shapes."""

    def __init__(self) -> None:
        rec = recorded_stack()
        self._version = rec["version"]
        self.containers = self
        self._by_id = {}
        for a in rec["containers"]:
            a = copy.deepcopy(a)
            for m in a.get("Mounts", []):   # the recording's checkout is not this one
                if m.get("Destination") == "/etc/litellm/config.yaml":
                    m["Source"] = str(ROOT / "compose" / "litellm" / Path(m["Source"]).name)
            self._by_id[a["Id"]] = a

    def version(self) -> dict[str, Any]:
        return self._version

    def get(self, cid: str) -> Any:
        a = self._by_id[cid]
        return type("Container", (), {"attrs": a, "labels": a["Config"]["Labels"]})()


def status_check(run: RunDir, down: tuple[str, ...] = ()) -> CheckResult:
    services = [s for s in stack_services() if s.name not in down]
    declared = [s.name for s in stack_services()]
    r = status_result(declared, services, time.perf_counter(), T0)
    run.write_check(r, status_text(r))
    return r


def health_check(run: RunDir, failing: tuple[str, ...] = ()) -> CheckResult:
    probes = [ProbeResult(s.name, f"{s.url}{s.health_path}", 503 if s.name in failing else 200,
                          0.010 + 0.004 * i, s.name not in failing, {"status": "ok"},
                          "unexpected status" if s.name in failing else "")
              for i, s in enumerate(stack_services())]
    r = health_result(probes, wall_s=0.034, started_at=T0)
    run.write_check(r, health_text(r))
    return r


def load_requests(*, failed: int = 0) -> list[Request]:
    """5 requests/s for 40 s; primary stopped at 10 s, healthy again at 25 s.  Requests in flight at
    the fault are retried on the secondary; ``failed`` requests from 20 s on get a 500."""
    reqs = []
    for k in range(200):
        t = CLOCK0 + k * 0.2
        backend, lat, status = PRIMARY, 0.60 + 0.01 * (k % 7), 200
        if t + lat >= CLOCK0 + 10 and t < CLOCK0 + 25:
            backend, lat = SECONDARY, 0.70 + 0.01 * (k % 5)
            if t < CLOCK0 + 10:
                lat = CLOCK0 + 10 - t + 0.78     # in flight on the primary when it died
            elif t < CLOCK0 + 10.4:
                lat += 0.05                      # the gateway's refused first try, then the secondary
        err = None
        if failed and CLOCK0 + 20 <= t and sum(1 for r in reqs if not r.ok) < failed:
            status, backend, err = 500, None, "InternalServerError: no deployments available"
        reqs.append(Request(k, t, round(lat, 4), status, backend, "m", None, None, err, 1))
    return reqs


def failover_check(run: RunDir, *, failed: int = 0, restored: bool = True) -> CheckResult:
    """What run_failover computes and writes, from its own pure parts."""
    reqs = load_requests(failed=failed)
    for r in reqs:   # run_failover's record()
        run.event("request", phase="failover", t=run.to_run_time(r.t_send), seq=r.seq,
                  latency_s=round(r.latency_s, 4), status=r.status, backend=r.backend, model_id=r.model_id,
                  retries=r.retries, fallbacks=r.fallbacks, error=r.error, completion_tokens=r.completion_tokens)
    m = Marks(t_start=CLOCK0, t_fault=CLOCK0 + 10, t_restore=CLOCK0 + 24 if restored else None,
              t_primary_ok=CLOCK0 + 25 if restored else None, primary=PRIMARY, secondary=SECONDARY)
    run.event("fault", t=run.to_run_time(m.t_fault), phase="failover", service=PRIMARY, action="stop")
    if restored:
        run.event("restore", t=run.to_run_time(m.t_restore), phase="failover", service=PRIMARY, action="start")
    a = analyse(reqs, m)
    aj = a.to_json()   # what run_failover writes into the evidence
    rows = per_second(reqs, m)
    metrics = {k: aj[k] for k in ("failover_time_s", "failover_penalty_s", "failed_requests", "total_requests",
                                 "served_by_secondary", "failback_time_s")}
    metrics["availability_pct"] = availability_pct(reqs)
    metrics["restored"] = restored
    metrics["latency"] = aj["latency"]
    dod = failover_dod(a, "stop", restored, None)
    details = {"mode": "stop", "target": PRIMARY, "secondary": SECONDARY, "rps": 5.0, "max_tokens": 1,
               "fault_at_s": 10.0, "outage_s": 14.0, "per_attempt_timeout_s": None, "preflight_warm": [],
               "router": None, "analysis": aj, "timeline": [row.to_json() for row in rows], "restored": restored,
               "restore_action": "start" if restored else None, "notes": [],
               "marks": {"fault": 10.0, "restore": 24.0 if restored else None,
                         "primary_ok": 25.0 if restored else None}}
    r = CheckResult("failover", T0, 41.2, metrics, dod, details)
    run.write_check(r, failover_text(r, rows, a))
    return r


def gpu_check(run: RunDir, tmp: Path, *, gpu: bool = True) -> CheckResult:
    """run_gpu_report with the fake NVML: the reference's 5374 MiB against 2253 + 2560 + 512 MiB."""
    terms = ("weights_mib", "kv_cache_mib", "compute_mib", "cuda_context_mib")
    budget = tmp / "budget.json"
    budget.write_text(json.dumps({"overhead_mib": 512, "services": {
        PRIMARY: dict(zip(terms, (1900, 200, 153, 0))), SECONDARY: dict(zip(terms, (2100, 256, 204, 0)))}}))
    fake = (FakeNvml([FakeGpu(total_mib=8192, used_mib=[5360, 5374, 5381, 5374, 5366], name="NVIDIA L4")])
            if gpu else FakeNvml([], init_error=NVML_ERROR_DRIVER_NOT_LOADED))
    clock = FakeClock(CLOCK0 + 50)
    options = GpuReportOptions(duration_s=2.0, interval_s=0.1, device=None, tolerance_pct=10.0,
                               budget_file=budget)
    r, text = run_gpu_report(run, None, options, nvml=fake, resolver=lambda cid: None,
                             clock=clock, sleep=clock.sleep)
    run.write_check(r, text)   # the GPU check returns its evidence; the caller writes it once
    return r


def recorded_check(run: RunDir, check: str) -> None:
    """A check's evidence as the real code wrote it against the real stack, with its events."""
    stem = CHECK_FILES[check]
    for ext in ("json", "txt"):
        shutil.copyfile(RECORDED / f"{stem}.{ext}", run.path / f"{stem}.{ext}")
    events = RECORDED / f"{check}_events.ndjson"
    if events.exists():
        for line in events.read_text().splitlines():
            e = json.loads(line)
            run.event(e.pop("kind"), **e)


def write_manifest(run: RunDir) -> dict[str, Any]:
    """manifest.json as Context.manifest() writes it (after the checks, as cli and certify do)."""
    engine = RecordedEngine()
    m = collect(Sources(ROOT, "llmops", "cpu", Compose(ROOT, "cpu", "llmops"), docker=lambda: engine,
                        services=stack_services, git_sha="3f2c1e9a7b"), run_path=run.path)
    data = m.to_json()
    run.write_json("manifest.json", data)
    return data


def make_run(root: Path, name: str, *, failed: int = 0, restored: bool = True, gpu: str = "pass",
             health_fails: tuple[str, ...] = (), manifest: bool = True, recorded: bool = True) -> Path:
    run = RunDir(root / name, t0=CLOCK0)
    status_check(run)
    if recorded:
        recorded_check(run, "functional")
    health_check(run, failing=health_fails)
    failover_check(run, failed=failed, restored=restored)
    if recorded:
        recorded_check(run, "qdrant")
    if gpu != "none":
        gpu_check(run, root, gpu=gpu == "pass")
    if manifest:
        write_manifest(run)
    run.close()
    return run.path


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    """All six checks, all passing, with events: rendered once for the module (charts are slow)."""
    path = make_run(tmp_path_factory.mktemp("report"), "full")
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


def _check_json(run_dir: Path, check: str) -> dict[str, Any]:
    return json.loads((run_dir / f"{CHECK_FILES[check]}.json").read_text())


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


def test_fixture_checks_are_what_the_producers_say(full_run):
    """Guard on the fixtures themselves: the producers really judged this run as passing."""
    run_dir, _ = full_run
    for cid in CHECK_FILES:
        c = _check_json(run_dir, cid)
        assert c["status"] == "pass", (cid, [d for d in c["dod"] if not d["pass"]])
    fo = _check_json(run_dir, "failover")["metrics"]
    assert fo["failed_requests"] == 0 and fo["total_requests"] == 200 and fo["served_by_secondary"]
    assert _check_json(run_dir, "gpu")["metrics"]["expected_mib"] == 5325


def test_summary_figures_are_the_json_numbers(full_run):
    """Every numeric metric in every check JSON appears, formatted identically, in md and html."""
    run_dir, res = full_run
    md = res.summary_md.read_text()
    parser = _Cells()
    parser.feed(res.summary_html.read_text())
    expected = list(_numeric_metrics(run_dir))
    assert {cid for cid, _, _ in expected} == set(CHECK_FILES)
    for cid, name, v in expected:
        shown = fmt_metric(name, v)
        assert fmt(v) in shown
        # Markdown: the figures row of this metric, in this check's section.
        section = md.split(f"## {CHECK_FILES[cid][:2]} ", 1)[1].split("\n## ", 1)[0]
        assert f"| `{name}` | {shown} |" in section, (cid, name, shown)
        # HTML: the cell tagged with this check and metric.
        assert parser.metrics[(cid, name)] == shown, (cid, name)
    # Strings and bools are shown as in the JSON too.
    backend = _check_json(run_dir, "functional")["metrics"]["gateway_backend"]
    assert f"| `gateway_backend` | {backend} |" in md
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
    # performance table with the measured figures and the reference procedure's
    fo = _check_json(run_dir, "failover")["metrics"]
    assert "| criterion | expected | measured | status | reference procedure |" in md
    assert f"| {fmt_metric('failover_time_s', fo['failover_time_s'])} | PASS | 1.15 s, HTTP 200 |" in md
    assert "| 6/6 | PASS | 6/6 services Up (healthy) |" in md
    assert "6/6 returned 200" in md and "4 s to say qdrant:false" in md
    gm = _check_json(run_dir, "gpu")["metrics"]
    assert (f"{fmt_metric('used_mib', gm['used_mib'])} vs 5325 MiB expected "
            f"({fmt_metric('error_pct', gm['error_pct'])})") in md
    assert "5374 MiB vs 5325 MiB expected (+0.9%)" in md      # the reference's figure
    # each performance row is judged by the DoD line about its own figure
    perf = {p["criterion"]: p for p in json.loads(res.summary_json.read_text())["performance"]}
    assert perf["GPU memory used vs expected"]["dod_criterion"] == "measured VRAM within tolerance of budget"
    assert perf["Health sweep wall time"]["dod_criterion"].startswith("probes run concurrently")
    assert perf["Failover penalty (that reply over the secondary's median)"]["dod_criterion"] == "failover_penalty_s"
    assert "## Conclusion" in md and "All 6 checks that ran passed." in md
    assert "Exit code 0" in md


def test_environment_rows_come_from_the_written_manifest(full_run):
    """The bug this guards: the report read keys manifest.json never had, so Docker and OS never showed."""
    run_dir, res = full_run
    written = json.loads((run_dir / "manifest.json").read_text())
    env = res.summary_md.read_text().split("## Environment", 1)[1].split("\n## ", 1)[0]
    rows = dict(re.findall(r"^\| ([^|]+?) \| (.+) \|$", env, re.M))
    assert rows["Docker"] == f"`{written['engine']['docker']}`"
    assert rows["OS / platform"] == f"`{written['host']['os']}`"
    assert rows["Host"] == f"`{written['host']['name']}`"
    assert rows["NVIDIA driver"] == "`550.54.15`" == f"`{written['gpu']['driver_version']}`"
    assert rows["CUDA"] == "`12.4`" and rows["GPU"] == "`NVIDIA L4, 8 GiB`"   # the fake card: 8192 MiB
    assert rows["Profile"] == "`cpu`" and rows["Git SHA"] == "`3f2c1e9a7b`"
    settings = written["router"]["router_settings"]
    assert settings and rows["Router settings"] == ", ".join(f"`{k}: {fmt(v)}`" for k, v in settings.items())
    for name, img in written["images"].items():
        assert f"{name}: {img['image']} ({img['id'][:19]})" in rows["Images"]
    assert len(written["images"]) == 6
    # and the same through the reader the report uses
    m = Manifest.from_json(written)
    assert m.engine.docker == written["engine"]["docker"] and m.host.os == written["host"]["os"]
    assert m.to_json() == written


def test_manifest_from_json_takes_partial_and_older_files():
    assert Manifest.from_json(None) == Manifest()
    assert Manifest.from_json({"host": "bench-01", "engine": [], "images": "x", "gpu": 3}).host.name == "bench-01"
    older = {"tool": "llmops", "version": "0.1.0", "engine": {"docker": "20.10.24", "api": "1.41"},
             "host": {"name": "h", "kernel": "6.1"}, "images": {"rag": {"image": "llmops/pysvc:latest",
                                                                      "id": "sha256:" + "c" * 64}},
             "router": None, "gpu": None}
    m = Manifest.from_json(older)
    assert (m.engine.docker, m.host.os, m.images["rag"].image, m.gpu) == ("20.10.24", None, "llmops/pysvc:latest", None)


def test_summary_json_is_the_machine_form(full_run):
    run_dir, res = full_run
    s = json.loads(res.summary_json.read_text())
    assert s["status"] == "pass" and s["exit_code"] == 0
    assert [c["check"] for c in s["checks"]] == list(CHECK_FILES)
    assert s["counts"] == {"pass": 6, "fail": 0, "skipped": 0, "error": 0, "total": 6}
    for c in s["checks"]:
        on_disk = json.loads((run_dir / c["file"]).read_text())
        assert c["metrics"] == on_disk["metrics"] and c["dod"] == on_disk["dod"]
    assert s["environment"] == json.loads((run_dir / "manifest.json").read_text())
    assert set(s["charts"]) == {"failover", "qdrant", "gpu"}
    perf = {p["criterion"]: p for p in s["performance"]}
    assert perf["Failover time (primary gone to the secondary's first reply to a request sent after it)"]["reference"] == \
        "1.15 s, HTTP 200"


def test_junit_validates_one_testcase_per_check(full_run, tmp_path):
    xmlschema = pytest.importorskip("xmlschema")
    schema = xmlschema.XMLSchema(str(XSD))
    run_dir, res = full_run
    schema.validate(str(res.junit_xml))
    doc = schema.to_dict(str(res.junit_xml))
    assert [tc["@name"] for tc in doc["testcase"]] == list(CHECK_FILES)
    assert doc["@tests"] == 6 and doc["@failures"] == 0
    assert doc["@hostname"] == json.loads((run_dir / "manifest.json").read_text())["host"]["name"]

    # a mixed run: failed requests, restore failure, skipped GPU, an errored check
    path = make_run(tmp_path, "mixed", failed=3, gpu="skipped", manifest=False, recorded=False)
    run = RunDir(path)
    # The check runner's own producer of an `error` result, through the real writer.
    run.write_check(CheckResult.failed_to_run("functional", "ConnectError: connection refused", 1, T0, 0.2),
                    "could not run")
    run.close()
    r = render_report(path, charts=False)
    schema.validate(str(r.junit_xml))
    d = schema.to_dict(str(r.junit_xml))
    cases = {tc["@name"]: tc for tc in d["testcase"]}
    assert list(cases) == ["status", "functional", "health", "failover", "gpu"]
    assert "failed_requests" in cases["failover"]["failure"]["@message"]
    assert cases["gpu"]["skipped"]["@message"].startswith("NVML")
    assert cases["functional"]["error"]["@message"] == "ConnectError: connection refused"
    assert (d["@failures"], d["@errors"], d["@skipped"]) == (1, 1, 1)
    assert d["@hostname"] == "localhost"


def test_failed_check_exits_1_and_conclusion_names_the_dod_line(tmp_path):
    path = make_run(tmp_path, "fail", failed=3)
    r = render_report(path, charts=False)
    assert (r.exit_code, r.status) == (1, "fail")
    md = r.summary_md.read_text()
    conclusion = md.split("## Conclusion", 1)[1]
    assert "failover FAILED" in conclusion
    assert '"failed_requests during the whole run" (expected 0, measured 3)' in conclusion
    s = json.loads(r.summary_json.read_text())
    assert s["failed_dod"][0]["criterion"] == "failed_requests during the whole run"
    assert s["checks"][3]["dod_failed"] == ["failed_requests during the whole run"]


def test_restore_false_exits_5_even_with_other_failures(tmp_path):
    path = make_run(tmp_path, "restore", restored=False, gpu="skipped", health_fails=("rag",))
    r = render_report(path, charts=False)
    assert r.exit_code == 5 and r.status == "fail"
    md = r.summary_md.read_text()
    assert "RESTORE FAILED" in md.split("## Conclusion", 1)[1]
    assert md.index("RESTORE FAILED") < md.index("## Tests")     # loudest: at the top
    assert "health FAILED" in md.split("## Conclusion", 1)[1]
    # restored=false in details alone, on a passing check, still counts as 5
    ok = Criterion.judge("ok", "1", 1, True, samples=1)
    c = CheckResult("qdrant", T0, 1.0, {}, [ok], {"restored": False}).to_json()
    assert c["status"] == "pass" and check_exit_code(c) == 5


def test_skipped_gpu_alone_exits_3_only_if_nothing_failed(tmp_path):
    """Why 7 of the verdict issue: every check that could run passed, the GPU alone was skipped:
    the headline says PASS (GPU check skipped: no GPU), exit 3 as documented (it read SKIPPED)."""
    r = render_report(make_run(tmp_path, "skip", gpu="skipped"), charts=False)
    assert (r.exit_code, r.status) == (3, "pass")
    md = r.summary_md.read_text()
    assert "Result: **PASS (GPU check skipped: no GPU)**, exit 3: skipped" in md
    assert "gpu was skipped: NVML" in md
    s = json.loads(r.summary_json.read_text())
    assert s["headline"] == "PASS (GPU check skipped: no GPU)"
    assert s["availability"] == [{"check": "failover", "availability_pct": 100.0, "ok": 200, "total": 200}]
    assert "Availability during failover:** 100 % (200 of 200 requests answered 2xx)" in md
    r2 = render_report(make_run(tmp_path, "skipfail", gpu="skipped", failed=2), charts=False)
    assert r2.exit_code == 1


def _edit(path: Path, stem: str, change) -> None:
    f = path / f"{stem}.json"
    doc = json.loads(f.read_text())
    change(doc)
    f.write_text(json.dumps(doc))


@pytest.mark.parametrize("name, change, says", [
    # Why 4: a check file with status pass and a false DoD line rendered PASS, exit 0.
    ("pass-with-false-line", lambda d: d["dod"][0].update({"pass": False}),
     "stored status 'pass' disagrees with its own DoD lines and reason, which give 'fail'"),
    # status error with exit_code 0 exited 0: now an error needs its reason, and exits non-zero
    ("error-without-reason", lambda d: d.update({"status": "error"}), "stored status 'error' disagrees"),
    # a pass claimed on too few samples
    ("pass-on-no-samples", lambda d: d["dod"][0].update({"samples": 0}), "claims a pass on 0 of 5 samples"),
    ("restored-string", lambda d: d["metrics"].update({"restored": "false"}),
     'metrics.restored must be true or false, not "false"'),
    ("dod-not-a-list", lambda d: d.update({"dod": {"a": 1}}), "dod must be a list"),
    ("duration-slow", lambda d: d.update({"duration_s": "slow"}), 'duration_s must be a number of seconds, not "slow"'),
    ("no-samples-field", lambda d: d["dod"][0].pop("samples"), "dod[0].samples must be a count"),
])
def test_malformed_check_file_is_refused_naming_the_field(tmp_path, name, change, says):
    path = make_run(tmp_path, name, gpu="none", recorded=False)
    _edit(path, "04_failover_test", change)
    with pytest.raises(ReportError) as e:
        render_report(path, charts=False)
    assert "04_failover_test.json" in str(e.value) and says in str(e.value), str(e.value)
    assert e.value.exit_code == 2


def test_an_error_whose_own_code_is_0_still_exits_non_zero(tmp_path):
    path = make_run(tmp_path, "err0", gpu="none", recorded=False)
    _edit(path, "04_failover_test", lambda d: (d.update({"status": "error"}),
                                               d["details"].update({"error": "cut short", "exit_code": 0})))
    r = render_report(path, charts=False)
    assert r.exit_code == 1 and r.status == "error"


def test_charts_are_pngs_when_data_present_and_absent_otherwise(full_run, tmp_path):
    run_dir, res = full_run
    assert set(res.charts) == {"failover", "qdrant", "gpu"}
    md = res.summary_md.read_text()
    for name in ("chart_failover.png", "chart_qdrant.png", "chart_gpu.png"):
        p = run_dir / name
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 5000
        assert f"]({name})" in md
    # only the GPU check's samples: one chart; and no events at all: none, and no links
    run = RunDir(tmp_path / "gpuonly", t0=CLOCK0)
    status_check(run)
    gpu_check(run, tmp_path)
    run.close()
    only = run.path
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
    run = RunDir(tmp_path / "trunc", t0=CLOCK0)
    status_check(run)
    recorded_check(run, "qdrant")
    run.close()
    # a run killed mid-write leaves half a line at the end
    with (run.path / "events.ndjson").open("a") as f:
        f.write('{"t": 99.5, "kind": "rag_he')
    r = render_report(run.path)
    assert set(r.charts) == {"qdrant"}
    assert any("unreadable" in w for w in r.warnings)


def test_importing_report_does_not_import_matplotlib():
    code = "import sys, llmops.report; assert 'matplotlib' not in sys.modules, 'imported'"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_help_does_not_import_matplotlib():
    p = subprocess.run([sys.executable, "-X", "importtime", "-m", "llmops", "--help"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "llmops.cli" in p.stderr                 # the import log is really there
    assert "matplotlib" not in p.stderr


def test_report_cli_renders_from_any_folder(full_run, tmp_path):
    """`llmops report RUN_DIR` needs the run folder only: no checkout above the working folder."""
    run_dir, _ = full_run
    copy_ = tmp_path / "elsewhere" / "run"
    shutil.copytree(run_dir, copy_)
    cwd = tmp_path / "nowhere"
    cwd.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("LLMOPS_DEBUG",)}
    p = subprocess.run([sys.executable, "-m", "llmops", "--json", "report", str(copy_)], cwd=cwd,
                       capture_output=True, text=True, timeout=120, env=env)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["exit_code"] == 0 and str(copy_ / "summary.md") in out["files"]
    # the default (evidence/latest) still needs to know where the evidence is: one line, exit 2
    p = subprocess.run([sys.executable, "-m", "llmops", "report"], cwd=cwd, capture_output=True,
                       text=True, timeout=60, env=env)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert p.stderr.strip().startswith("llmops: error: ") and len(p.stderr.strip().splitlines()) == 1
    # ... which --evidence-dir gives, from anywhere
    run = RunDir.create(tmp_path / "ev")
    status_check(run)
    run.close()
    p = subprocess.run([sys.executable, "-m", "llmops", "--evidence-dir", str(tmp_path / "ev"), "report"],
                       cwd=cwd, capture_output=True, text=True, timeout=60, env=env)
    assert p.returncode == 0, p.stderr
    assert (run.path / "summary.md").exists()


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
    run = RunDir.create(tmp_path / "evidence", "20260601-100000")
    status_check(run)
    health_check(run)
    run.close()
    r = render_report(tmp_path / "evidence" / "latest", charts=False)
    assert r.run_dir == run.path.resolve() and r.exit_code == 0
    assert (run.path / "summary.md").exists() and (run.path / "junit.xml").exists()
    assert json.loads(r.summary_json.read_text())["not_run"] == ["functional", "failover", "qdrant", "gpu"]


# ---- a manifest that could not be collected whole -------------------------------------------------

def _engine_with_config(cfg: Path) -> "RecordedEngine":
    engine = RecordedEngine()
    for a in engine._by_id.values():
        for m in a.get("Mounts", []):
            if m.get("Destination") == "/etc/litellm/config.yaml":
                m["Source"] = str(cfg)
    return engine


def test_a_malformed_gateway_config_is_recorded_in_the_manifest_and_shown_in_the_report(tmp_path):
    """`router_settings: [1]` crashed manifest.collect after the checks were written: certify then
    rendered no report.  Now the manifest keeps what it could collect, and says what it could not."""
    cfg = tmp_path / "config.yaml"
    cfg.write_text((ROOT / "compose" / "litellm" / "config.yaml").read_text()
                   .replace("router_settings:\n", "router_settings: [1]\nunused_settings:\n", 1))
    path = make_run(tmp_path, "run", manifest=False)
    run = RunDir.open(path)
    m = collect(Sources(ROOT, "llmops", "cpu", Compose(ROOT, "cpu", "llmops"),
                        docker=lambda: _engine_with_config(cfg), services=stack_services, git_sha="3f2c1e9a7b"),
                run_path=path)
    assert m.router is None and len(m.images) == 6          # the rest was still collected
    assert m.manifest_error == f"router: LiteLLM config {cfg}: router_settings must be a mapping, got [1]"
    run.write_json("manifest.json", m.to_json())
    assert Manifest.read(path / "manifest.json").manifest_error == m.manifest_error
    r = render_report(path, charts=False)
    md = r.summary_md.read_text()
    env = md.split("## Environment", 1)[1].split("\n## ", 1)[0]
    assert "| Manifest error |" in env and "router_settings must be a mapping" in env
    assert any("manifest.json is incomplete" in w for w in r.warnings)


def test_an_unexpected_crash_while_collecting_is_recorded_not_raised(tmp_path):
    class Broken(RecordedEngine):
        def get(self, cid: str) -> Any:
            raise KeyError("Config")     # a container whose inspect lacks a field

    m = collect(Sources(ROOT, "llmops", "cpu", Compose(ROOT, "cpu", "llmops"), docker=Broken,
                        services=stack_services))
    assert m.manifest_error == "engine: KeyError: 'Config'" and m.engine.docker
