"""The 06_gpu_memory check end to end, with a fake NVML, a fake /proc and a fake clock."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from llmops.errors import ConfigError, UsageError
from llmops.evidence import RunDir, read_events
from llmops.gpu.attribution import Attributor
from llmops.gpu.check import GpuReportOptions, format_gpu_text, run_gpu_report
from llmops.gpu.server import ModelServer
from llmops.testing.gguf_shapes import LLAMA_SHAPES, write_sparse_gguf
from llmops.testing.nvml import FakeClock, FakeGpu, FakeNvml, write_pynvml_shim

REQUIRED = {"total_mib", "used_mib", "expected_mib", "error_pct", "peak_used_mib", "per_service"}
C_CHAT, C_CODE, C_OTHER = (secrets.token_hex(32) for _ in range(3))


@pytest.fixture
def run(tmp_path):
    r = RunDir(tmp_path / "run")
    yield r
    r.close()


def make_proc(tmp: Path, pids: dict[int, str]) -> Path:
    proc = tmp / "proc"
    for pid, cg in {1: "0::/init.scope\n", **pids}.items():
        (proc / str(pid)).mkdir(parents=True)
        (proc / str(pid) / "cgroup").write_text(cg)
        (proc / str(pid) / "comm").write_text("llama-server\n")
    (tmp / "root").mkdir()
    return proc


def report(run, fake, tmp_path, *, services=None, budget=None, tolerance=5.0, device=None,
           proc_pids=None, duration=0.4, attributor=None, resolver=None):
    clock = FakeClock()
    if attributor is None and proc_pids is not None:
        known = {s.container_id: s.name for s in services or [] if s.container_id}
        attributor = Attributor(proc_root=make_proc(tmp_path, proc_pids), root=tmp_path / "root",
                                known=known, resolver=resolver or (lambda cid: None))
    options = GpuReportOptions(duration_s=duration, interval_s=0.1, device=device,
                               tolerance_pct=tolerance, budget_file=budget)
    res, text = run_gpu_report(run, services, options, nvml=fake, attributor=attributor,
                               resolver=resolver or (lambda cid: None), clock=clock,
                               sleep=clock.sleep)
    assert not (run.path / "06_gpu_memory.json").exists()   # the caller writes it, once
    run.write_check(res, text)
    return res


def written(run) -> dict:
    return json.loads((run.path / "06_gpu_memory.json").read_text())


def reference_budget(tmp_path: Path, chat=(1900, 200, 153, 0), code=(2100, 256, 204, 0), overhead=512):
    terms = ("weights_mib", "kv_cache_mib", "compute_mib", "cuda_context_mib")
    p = tmp_path / "budget.yaml"
    p.write_text(json.dumps({"overhead_mib": overhead, "services": {
        "inference-chat": dict(zip(terms, chat)), "inference-code": dict(zip(terms, code))}}))
    return p, sum(chat) + sum(code) + overhead


@pytest.mark.parametrize("tolerance, status, code", [(None, "pass", 0), (5.0, "pass", 0),
                                                     (0.5, "fail", 1)])
def test_reference_example_reproduced(run, tmp_path, tolerance, status, code):
    """3B model at 2253 MiB + 7B at 2560 MiB + 512 MiB overhead = 5325 expected; 5374 measured:
    +0.9 %, a pass at the default tolerance (the reference procedure's 1 %)."""
    from llmops.gpu.check import DEFAULT_TOLERANCE_PCT

    assert DEFAULT_TOLERANCE_PCT == 1.0
    tolerance = DEFAULT_TOLERANCE_PCT if tolerance is None else tolerance
    budget, expected = reference_budget(tmp_path)
    assert expected == 2253 + 2560 + 512
    measured = 5374
    fake = FakeNvml([FakeGpu(total_mib=24576, used_mib=measured)])
    res = report(run, fake, tmp_path, budget=budget, tolerance=tolerance, proc_pids={})
    m = written(run)["metrics"]
    assert REQUIRED <= set(m)
    assert m["expected_mib"] == pytest.approx(expected)
    assert m["used_mib"] == pytest.approx(measured, abs=0.05)
    assert m["error_pct"] == pytest.approx(100 * (measured - expected) / expected, abs=0.01)
    assert m["per_service"]["inference-chat"]["expected_mib"] == pytest.approx(2253)
    assert m["per_service"]["inference-code"]["expected_mib"] == pytest.approx(2560)
    assert res.status == status and res.exit_code() == code
    txt = (run.path / "06_gpu_memory.txt").read_text()
    assert f"{100 * (measured - expected) / expected:+.1f}%" in txt      # "+0.9%"
    assert f"Result: {status.upper()}" in txt
    assert "Headroom at peak" in txt
    assert written(run)["details"]["memory_api"] == ["v2"]


def test_per_service_attribution_and_unattributed(run, tmp_path):
    fake = FakeNvml([FakeGpu(total_mib=16384, used_mib=[3000, 3100, 3050, 3020, 3010], reserved_mib=321,
                             compute=[(101, 1200), (202, 1500), (303, 40)],
                             graphics=[(404, 25)])])
    services = [ModelServer("inference-chat", container_id=C_CHAT[:12]),
                ModelServer("inference-code", container_id=C_CODE)]
    budget, _ = reference_budget(tmp_path, chat=(1000, 100, 50, 0), code=(1300, 100, 50, 0), overhead=0)
    res = report(run, fake, tmp_path, services=services, budget=budget, proc_pids={
        101: f"0::/system.slice/docker-{C_CHAT}.scope\n",
        202: f"12:memory:/docker/{C_CODE}\n",
        303: f"0::/system.slice/docker-{C_OTHER}.scope\n",      # a container of no service
        404: "0::/user.slice/session-1.scope\n"})                # a host process (Xorg)
    ps = res.metrics["per_service"]
    assert ps["inference-chat"]["measured_mib"] == pytest.approx(1200)
    assert ps["inference-chat"]["pids"] == [101]
    assert ps["inference-code"]["measured_mib"] == pytest.approx(1500)
    assert ps["inference-chat"]["error_pct"] == pytest.approx(100 * (1200 - 1150) / 1150, abs=0.01)
    assert res.metrics["unattributed_mib"] == pytest.approx(65)
    assert res.details["unattributed"]["pids"] == [303, 404]
    assert res.metrics["peak_used_mib"] == pytest.approx(3100)
    assert res.metrics["peak_t_s"] == pytest.approx(0.1)
    assert res.metrics["headroom_mib"] == pytest.approx(16384 - 3100 - 321)   # v2: reserved is not free
    assert res.metrics["used_mib"] == pytest.approx((3000 + 3100 + 3050 + 3020 + 3010) / 5)
    assert res.details["attribution"]["mode"] == "host"
    ev = [e for e in read_events(run.path) if e["kind"] == "gpu_sample"]
    assert len(ev) == res.details["sampling"]["samples"] == 5
    assert [e["used_mib"] for e in ev] == [3000, 3100, 3050, 3020, 3010]
    assert {p["pid"] for p in ev[0]["processes"]} == {101, 202, 303, 404}


def test_no_gpu_is_skipped_with_reason_and_evidence(run, tmp_path):
    res = report(run, FakeNvml([FakeGpu()], init_error=12), tmp_path)
    assert res.status == "skipped" and res.exit_code() == 3
    j = written(run)
    assert j["status"] == "skipped" and REQUIRED <= set(j["metrics"])
    assert "Library Not Found" in j["details"]["reason"]
    assert "\n" not in j["details"]["reason"]
    assert "SKIPPED: NVML init failed" in (run.path / "06_gpu_memory.txt").read_text()


def test_no_driver_via_real_loader_is_skipped(run, tmp_path, monkeypatch):
    """Without injection the real loader runs; a missing binding must also be a skip."""
    import llmops.gpu.sampling as smp
    from llmops.gpu.nvml import NvmlUnavailable

    def boom():
        raise NvmlUnavailable("NVML binding not installed")

    monkeypatch.setattr(smp, "load_nvml", boom)
    res, text = run_gpu_report(run, None, GpuReportOptions(duration_s=0, interval_s=0.1, device=None,
                                                           tolerance_pct=5, budget_file=None))
    assert res.status == "skipped" and "binding not installed" in res.skipped
    assert text.startswith("GPU memory") and "SKIPPED" in text


def test_used_gpu_memory_unknown_is_never_zero(run, tmp_path):
    fake = FakeNvml([FakeGpu(used_mib=2000, compute=[(101, None)])])
    services = [ModelServer("inference-chat", container_id=C_CHAT)]
    budget, _ = reference_budget(tmp_path, overhead=0)
    res = report(run, fake, tmp_path, services=services, budget=budget,
                 proc_pids={101: f"0::/docker/{C_CHAT}\n"})
    e = res.metrics["per_service"]["inference-chat"]
    assert e["measured_mib"] is None and e["error_pct"] is None
    assert "usedGpuMemory" in e["measured_note"]
    assert res.details["processes"]["101"]["used_unknown"] is True
    assert "unknown" in (run.path / "06_gpu_memory.txt").read_text()


def test_not_supported_and_v1_fallback_recorded(run, tmp_path):
    fake = FakeNvml([FakeGpu(used_mib=5374, reserved_mib=100, util=None, compute=None, graphics=None)],
                    v2=False)
    budget, expected = reference_budget(tmp_path)
    res = report(run, fake, tmp_path, budget=budget, proc_pids={}, tolerance=5)
    assert res.details["memory_api"] == ["v1"]
    assert res.metrics["used_mib"] == pytest.approx(5374 + 100)      # v1 used includes reserved
    assert "gpu0.utilization" in res.details["unsupported"]
    txt = (run.path / "06_gpu_memory.txt").read_text()
    assert "memory API v1" in txt and "utilization not available" in txt


def test_several_gpus_summed_and_selectable(run, tmp_path):
    fake = FakeNvml([FakeGpu(total_mib=8000, used_mib=1000, compute=[(7, 300)]),
                     FakeGpu(total_mib=12000, used_mib=2500, compute=[(7, 200), (8, 100)])])
    budget, _ = reference_budget(tmp_path, chat=(3000, 0, 0, 0), code=(0, 0, 0, 0), overhead=0)
    res = report(run, fake, tmp_path, budget=budget, proc_pids={7: "0::/init.scope\n", 8: "0::/x\n"})
    assert res.metrics["total_mib"] == pytest.approx(20000)
    assert res.metrics["used_mib"] == pytest.approx(3500)
    assert len(res.details["devices"]) == 2
    assert res.details["processes"]["7"]["used"]["mean"] == pytest.approx(500)   # across GPUs
    assert res.metrics["unattributed_mib"] == pytest.approx(600)

    one = report(RunDir(tmp_path / "r1"), fake, tmp_path / "x", budget=budget, device=1, proc_pids={})
    assert one.metrics["total_mib"] == pytest.approx(12000)
    assert [d["index"] for d in one.details["devices"]] == [1]
    with pytest.raises(UsageError, match="0..1"):
        report(RunDir(tmp_path / "r2"), fake, tmp_path / "y", budget=budget, device=5, proc_pids={})


def test_pids_unresolvable_inside_container(run, tmp_path):
    fake = FakeNvml([FakeGpu(used_mib=3000, compute=[(101, 1000)])])
    budget, _ = reference_budget(tmp_path)
    # inside a container and NVML's PID is not in our /proc: unavailable, and it says why
    att = Attributor(proc_root=tmp_path, root=tmp_path, in_container="/.dockerenv exists")
    res = report(run, fake, tmp_path, budget=budget, attributor=att)
    assert res.details["attribution"]["mode"] == "unavailable"
    assert "inside a container" in res.details["attribution"]["reason"]
    for e in res.metrics["per_service"].values():
        assert e["measured_mib"] is None and "container" in e["measured_note"]
    assert "Attribution: unavailable" in (run.path / "06_gpu_memory.txt").read_text()


def test_budget_from_real_model_and_engine_log(run, tmp_path):
    log = ("load_tensors:        CUDA0 model buffer size =    92.10 MiB\n"
           "llama_kv_cache_unified:      CUDA0 KV buffer size =    45.00 MiB\n"
           "llama_context:      CUDA0 compute buffer size =   105.50 MiB\n")
    model = write_sparse_gguf(tmp_path / "l1b-q8.gguf", LLAMA_SHAPES["l1b-q8"])
    services = [ModelServer("inference-chat", container_id=C_CHAT, model_path=model,
                            argv=["-m", "/models/x.gguf", "-c", "2048", "-ngl", "99"], log_text=log),
                ModelServer("embedding")]
    fake = FakeNvml([FakeGpu(used_mib=520, compute=[(101, 500)])])
    budget = tmp_path / "b.json"
    budget.write_text(json.dumps({"cuda_context_mib": 250, "services": {"embedding": {}}}))
    res = report(run, fake, tmp_path, services=services, budget=budget,
                 proc_pids={101: f"0::/docker/{C_CHAT}\n"})
    chat = res.metrics["per_service"]["inference-chat"]
    b = res.details["budgets"]["inference-chat"]
    assert b["cuda_context_mib"] == 250 and b["sources"]["cuda_context_mib"] == "budget-file"
    assert b["sources"]["weights_mib"] == "formula"
    assert chat["expected_mib"] == pytest.approx(sum(b[t] for t in
                                                     ("weights_mib", "kv_cache_mib", "compute_mib", "cuda_context_mib")), abs=0.1)
    assert chat["engine_reported_mib"] == pytest.approx(92.10 + 45 + 105.5)
    assert chat["measured_mib"] == pytest.approx(500)
    # embedding: no model, but the budget file names it -> zero terms, budget known
    assert res.metrics["per_service"]["embedding"]["expected_mib"] == 0
    assert res.metrics["expected_mib"] == pytest.approx(chat["expected_mib"])


def test_service_without_budget_fails_coverage(run, tmp_path):
    services = [ModelServer("inference-chat", model_path=tmp_path / "missing.gguf", argv=["-ngl", "99"])]
    res = report(run, FakeNvml([FakeGpu(used_mib=100)]), tmp_path, services=services, proc_pids={})
    assert res.status == "fail"
    assert res.metrics["expected_mib"] is None
    assert any(c.criterion.startswith("budget known") and not c.passed for c in res.dod)
    assert "missing.gguf" in res.details["budgets"]["inference-chat"]["error"]


def test_nothing_to_compare_is_skipped(run, tmp_path):
    res = report(run, FakeNvml([FakeGpu(used_mib=100)]), tmp_path, proc_pids={})
    assert res.status == "skipped" and "nothing to compare" in res.skipped
    assert res.metrics["used_mib"] == pytest.approx(100)


def test_malformed_budget_file_raises_before_sampling(run, tmp_path):
    p = tmp_path / "b.yaml"
    p.write_text("services: {x: {weights_mib: [1, 2]}}\n")
    fake = FakeNvml([FakeGpu()])
    with pytest.raises(ConfigError):
        report(run, fake, tmp_path, budget=p, proc_pids={})
    assert not fake.initialised and fake.calls == []


@pytest.mark.parametrize("kw", [{"interval_s": 0}, {"duration_s": -1}, {"tolerance_pct": -2}])
def test_bad_arguments_are_usage_errors(run, kw):
    args = dict(duration_s=1, interval_s=0.1, device=None, tolerance_pct=5, budget_file=None)
    args.update(kw)
    with pytest.raises(UsageError):
        run_gpu_report(run, None, GpuReportOptions(**args), nvml=FakeNvml([FakeGpu()]))


def test_text_is_rendered_from_json_alone(run, tmp_path):
    budget, _ = reference_budget(tmp_path)
    res = report(run, FakeNvml([FakeGpu(used_mib=5374)]), tmp_path, budget=budget, proc_pids={})
    from_json = format_gpu_text(json.loads((run.path / "06_gpu_memory.json").read_text()))
    assert from_json == format_gpu_text(res)
    assert (run.path / "06_gpu_memory.txt").read_text().startswith(from_json)


def test_cli_without_docker_exits_by_its_verdict(tmp_path):
    """Found on a real H100 with no Docker: the report passed but the manifest's compose lookup
    turned it into exit 4.  The real CLI, a fake GPU shared through a state file, PATH empty."""
    state = tmp_path / "gpu.json"
    state.write_text(json.dumps({"used": 1636.0, "procs": [[4242, 1636.0]]}))
    write_pynvml_shim(tmp_path, state)
    budget = tmp_path / "budget.json"
    budget.write_text(json.dumps({"services": {"probe": {"weights_mib": 1024, "cuda_context_mib": 612}}}))
    src = Path(__file__).resolve().parent.parent / "src"
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{src}", "PATH": str(tmp_path / "nobin")}
    env["DOCKER_HOST"] = f"unix://{tmp_path}/no-docker.sock"
    p = subprocess.run([sys.executable, "-m", "llmops", "--project-dir", str(src.parent),
                        "--project-name", f"llmops-e2e-gpureport-{secrets.token_hex(6)}",
                        "--evidence-dir", str(tmp_path / "ev"), "gpu-report", "--duration", "0.3",
                        "--budget", str(budget), "--tolerance", "2"],
                       capture_output=True, text=True, env=env, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "Traceback" not in p.stderr
    run = next((tmp_path / "ev").glob("2*/"))
    assert json.loads((run / "06_gpu_memory.json").read_text())["status"] == "pass"
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["compose_binary"] is None and manifest["engine"] == {}
    # the GPU environment reaches the manifest (the gpu check's manifest additions, through the runner)
    assert manifest["gpu"]["devices"][0]["total_mib"] == pytest.approx(81559, abs=1)
    assert "driver_version" in manifest["gpu"]


def test_three_columns_fit_and_calibration_from_a_real_engine_log(run, tmp_path):
    """gpu-report per service: plan, engine-reported (the real H200 log) and NVML side by side;
    NVML minus the engine's buffers is recorded as a calibration gpu-plan can read."""
    from llmops.gpu.calibration import load_calibration

    data = Path(__file__).parent / "data" / "gpu-truth"
    model = write_sparse_gguf(tmp_path / "l1b-q8.gguf", LLAMA_SHAPES["l1b-q8"])
    log = (data / "logs" / "q8-1b-ngl99-c4096-np2.log").read_text()
    services = [ModelServer("inference-chat", container_id=C_CHAT, model_path=model,
                            argv=["-m", "/models/l1b-q8.gguf", "-c", "4096", "-np", "2", "-ngl", "99", "-lv", "4"],
                            log_text=log)]
    fake = FakeNvml([FakeGpu(total_mib=143771, used_mib=2047, compute=[(101, 2038)])])
    res = report(run, fake, tmp_path, services=services, tolerance=1.0,
                 proc_pids={101: f"0::/docker/{C_CHAT}\n"})
    e = res.metrics["per_service"]["inference-chat"]
    assert e["formula_buffers_mib"] == pytest.approx(1446.4, abs=0.1)
    assert e["engine_reported_mib"] == pytest.approx(1446.42)
    assert abs(e["buffers_error_pct"]) < 0.1
    assert e["measured_mib"] == pytest.approx(2038)
    assert e["engine_fit"] == "no changes" and e["engine_projected_mib"] == 1446
    cal = res.details["calibration"]
    assert cal["measured"]["inference-chat"]["overhead_mib"] == pytest.approx(2038 - 1446.42, abs=0.1)
    assert cal["overhead_mib"]["quantized"] == pytest.approx(591.6, abs=0.1)
    txt = (run.path / "06_gpu_memory.txt").read_text()
    assert "plan" in txt and "engine" in txt and "NVML" in txt and "llama.cpp fit: no changes" in txt
    # the evidence file itself is a calibration for gpu-plan
    loaded = load_calibration(run.path / "06_gpu_memory.json")
    assert loaded.overhead_for("quantized") == pytest.approx(591.6, abs=0.1)


def test_cli_on_a_machine_without_a_gpu_exits_3_with_a_skipped_check(tmp_path):
    """The real CLI where NVML cannot load (this CI machine): exit 3, a `skipped` 06 with the reason."""
    src = Path(__file__).resolve().parent.parent / "src"
    env = {**os.environ, "PYTHONPATH": str(src), "DOCKER_HOST": f"unix://{tmp_path}/no-docker.sock"}
    # Only meaningful where NVML really cannot load; a GPU machine proves the other paths.
    p = subprocess.run([sys.executable, "-c", "import pynvml; pynvml.nvmlInit()"], capture_output=True, env=env)
    if p.returncode == 0:
        pytest.skip("this machine has a working NVML; the no-GPU path is covered by the fakes")
    p = subprocess.run([sys.executable, "-m", "llmops", "--project-dir", str(src.parent),
                        "--project-name", f"llmops-e2e-gpureport-{secrets.token_hex(6)}",
                        "--evidence-dir", str(tmp_path / "ev"), "gpu-report", "--duration", "0.3"],
                       capture_output=True, text=True, env=env, timeout=60)
    assert p.returncode == 3, p.stdout + p.stderr
    assert "Traceback" not in p.stderr
    j = json.loads(next((tmp_path / "ev").glob("2*/06_gpu_memory.json")).read_text())
    assert j["status"] == "skipped" and "NVML" in j["details"]["reason"]


GPU_RUN = Path(__file__).parent / "data" / "gpu-run"    # this project's own H200 run (docs/gpu.md)


@pytest.mark.parametrize("log, argv, nvml, shrunk", [
    # fit lowered the context 8192 -> 5888 to keep -fitt free; the process held 3034 MiB
    ("fit-auto.log", ["-m", "l3b-q4.gguf", "-np", "1", "-fitt", "140157"], 3034, True),
    # -c and -ngl given: fit could not keep its margin, kept them ("abort") and loaded as asked
    ("fit-user-set.log", ["-m", "l3b-q4.gguf", "-c", "8192", "-np", "1", "-ngl", "99", "-fitt", "140157"],
     3290, False),
])
def test_a_server_fit_shrank_is_budgeted_as_it_runs_and_fails_its_own_line(run, tmp_path, log, argv, nvml, shrunk):
    from llmops.gpu.calibration import Calibration

    model = write_sparse_gguf(tmp_path / "l3b-q4.gguf", LLAMA_SHAPES["l3b-q4"])
    text = (GPU_RUN / log).read_text()
    services = [ModelServer("s", container_id=C_CHAT, model_path=model, argv=argv, log_text=text)]
    cal = Calibration(name="run A", overhead_mib={"none_offloaded": 519.0, "quantized": 589.8, "cublas": 690.0})
    clock = FakeClock()
    att = Attributor(proc_root=make_proc(tmp_path, {101: f"0::/docker/{C_CHAT}\n"}), root=tmp_path / "root",
                     known={C_CHAT: "s"}, resolver=lambda cid: None)
    options = GpuReportOptions(duration_s=0.4, interval_s=0.1, device=None, tolerance_pct=1.0, budget_file=None,
                               calibration=cal)
    res, _ = run_gpu_report(run, services, options, nvml=FakeNvml([FakeGpu(used_mib=nvml + 9, compute=[(101, nvml)])]),
                            attributor=att, resolver=lambda cid: None, clock=clock, sleep=clock.sleep)
    svc = res.metrics["per_service"]["s"]
    dod = {c.criterion: c for c in res.dod}
    line = dod["servers run what their command lines ask (llama.cpp's fit changed nothing)"]
    assert line.passed is (not shrunk)
    assert abs(svc["buffers_error_pct"]) < 2.0          # planned at the context the server really has
    assert dod["measured VRAM within tolerance of budget"].passed
    if shrunk:
        assert "n_ctx 5888" in line.measured and res.status == "fail"
        assert any("fit left" in a for a in res.details["budgets"]["s"]["assumptions"])
    else:
        assert res.status == "pass"


# ----------------------------------------------------------------------------- per-service lines

def _two_servers(run, tmp_path, compute, used_mib):
    services = [ModelServer("inference-chat", container_id=C_CHAT),
                ModelServer("inference-code", container_id=C_CODE)]
    budget, expected = reference_budget(tmp_path, chat=(1000, 0, 0, 0), code=(1000, 0, 0, 0), overhead=0)
    fake = FakeNvml([FakeGpu(total_mib=24576, used_mib=used_mib, compute=compute)])
    res = report(run, fake, tmp_path, services=services, budget=budget, tolerance=1.0,
                 proc_pids={101: f"0::/docker/{C_CHAT}\n", 202: f"0::/docker/{C_CODE}\n"})
    return res, {c.criterion: c for c in res.dod}


def test_one_server_over_and_the_other_under_fail_their_own_lines(run, tmp_path):
    """+20 % on one service and -20 % on the other sum to the budget exactly: the device total
    passes at +0.0 %, and before the per-service lines that was the whole verdict (a pass)."""
    res, dod = _two_servers(run, tmp_path, [(101, 1200), (202, 800)], 2000)
    assert dod["measured VRAM within tolerance of budget"].passed          # the total hides it
    chat = dod["inference-chat: measured VRAM within tolerance of its budget"]
    code = dod["inference-code: measured VRAM within tolerance of its budget"]
    assert (chat.passed, code.passed) == (False, False)
    assert chat.measured == "1200 MiB (+20.0%)" and chat.expected == "1000 MiB ±1%"
    assert code.measured == "800 MiB (-20.0%)"
    assert chat.samples == res.details["sampling"]["samples"] == 5          # its NVML samples
    assert res.status == "fail" and res.exit_code() == 1
    txt = (run.path / "06_gpu_memory.txt").read_text()
    assert "[FAIL] inference-chat: measured VRAM within tolerance of its budget: expected 1000 MiB ±1%, " \
           "measured 1200 MiB (+20.0%)" in txt


def test_servers_on_their_budgets_pass_their_own_lines(run, tmp_path):
    res, dod = _two_servers(run, tmp_path, [(101, 1005), (202, 995)], 2000)
    assert [c.passed for c in res.dod] == [True] * 4 and res.status == "pass"


def test_a_server_whose_memory_nvml_did_not_report_fails_as_not_measured(run, tmp_path):
    """The other server has its figure, this one none: not measured, so a fail, never a pass."""
    res, dod = _two_servers(run, tmp_path, [(101, 1000), (202, None)], 2000)
    code = dod["inference-code: measured VRAM within tolerance of its budget"]
    assert not code.passed and code.measured == "not measured (0 of 1 samples)"
    assert dod["inference-chat: measured VRAM within tolerance of its budget"].passed
    assert res.status == "fail"
    assert any("inference-code: NVML gave no usedGpuMemory" in n for n in res.details["notes"])


def test_no_per_process_memory_at_all_gives_no_per_service_line_and_says_so(run, tmp_path):
    res, dod = _two_servers(run, tmp_path, [(101, None), (202, None)], 2000)
    assert list(dod) == ["budget known for every service", "measured VRAM within tolerance of budget"]
    assert res.status == "pass"                        # the device total is all there is to judge
    assert any("no per-service VRAM line for inference-chat, inference-code" in n
               for n in res.details["notes"])


def _without_buffer_lines(text: str) -> str:
    """The same server's log as it reads without `-lv 4`: its buffer-size lines filtered out."""
    return "\n".join(ln for ln in text.splitlines() if "buffer size" not in ln) + "\n"


@pytest.mark.parametrize("buffers", [True, False])
def test_a_fit_shrunk_server_fails_its_fit_line_with_or_without_buffer_lines(run, tmp_path, buffers):
    """The real fit-shrunk log (tests/data/gpu-run/fit-auto.log), and the same log filtered of
    its buffer-size lines: both fail the fit line and exit 1.  Before, the filtered log's report
    was dropped as empty with it, so the line vanished and the same server exited 0."""
    from llmops.gpu.llamalog import parse_llama_log

    text = (GPU_RUN / "fit-auto.log").read_text()
    if not buffers:
        text = _without_buffer_lines(text)
        rep = parse_llama_log(text)
        assert rep.empty and rep.fit == "changed"          # the variant is what the test says
    model = write_sparse_gguf(tmp_path / "l3b-q4.gguf", LLAMA_SHAPES["l3b-q4"])
    services = [ModelServer("s", container_id=C_CHAT, model_path=model,
                            argv=["-m", "l3b-q4.gguf", "-np", "1", "-fitt", "140157"], log_text=text)]
    res = report(run, FakeNvml([FakeGpu(used_mib=3043, compute=[(101, 3034)])]), tmp_path,
                 services=services, tolerance=1.0, proc_pids={101: f"0::/docker/{C_CHAT}\n"})
    line = {c.criterion: c for c in res.dod}["servers run what their command lines ask (llama.cpp's fit changed nothing)"]
    assert not line.passed and line.expected == "0 of 1 changed"
    assert line.measured.startswith("1 changed (s: n_ctx 5888")
    assert res.status == "fail" and res.exit_code() == 1
    assert res.metrics["per_service"]["s"]["engine_fit"] == "changed"
    assert (res.metrics["per_service"]["s"]["engine_reported_mib"] is None) is (not buffers)


def test_a_log_without_fit_lines_gives_no_fit_line(run, tmp_path):
    """-fit off: the log says nothing about fit, so there is nothing to judge (no line)."""
    text = (Path(__file__).parent / "data" / "gpu-truth" / "logs" / "q4-8b-ngl99-c8192-fitoff.log").read_text()
    from llmops.gpu.analysis import fit_criterion
    from llmops.gpu.llamalog import parse_llama_log

    assert parse_llama_log(text).fit == "not run"
    assert fit_criterion({"s": parse_llama_log(text)}) is None
    assert fit_criterion({"s": parse_llama_log(_without_buffer_lines(text))}) is None
