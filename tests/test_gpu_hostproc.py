"""gpu-report without Docker: llama-servers named by PID (and log file), real local processes."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from llmops.errors import UsageError
from llmops.evidence import RunDir
from llmops.gpu.attribution import Attributor
from llmops.gpu.check import GpuReportOptions, run_gpu_report
from llmops.gpu.hostproc import HostServer, host_services, parse_host_server, parse_host_servers
from llmops.testing.gguf_shapes import LLAMA_SHAPES, write_sparse_gguf
from llmops.testing.nvml import FakeClock, FakeGpu, FakeNvml, write_pynvml_shim

SRC = Path(__file__).resolve().parent.parent / "src"
TRUTH = Path(__file__).parent / "data" / "gpu-truth"
ARGS = ["-c", "4096", "-np", "2", "-ngl", "99", "-lv", "4"]


@pytest.mark.parametrize("value, want", [
    ("inference-chat=4242", HostServer("inference-chat", 4242, None)),
    ("chat=7:/tmp/chat.log", HostServer("chat", 7, Path("/tmp/chat.log"))),
    ("chat=7:/tmp/a:b.log", HostServer("chat", 7, Path("/tmp/a:b.log"))),     # ':' in the path
    ("code=12\n", HostServer("code", 12, None)),
])
def test_parse_good_values(value, want):
    assert parse_host_server(value) == want


@pytest.mark.parametrize("value", ["chat", "=12", "chat=", "chat=abc", "chat=-1", "chat=0",
                                   "chat=12:", "a=b=12", "", " code = 12"])
def test_parse_bad_values_are_one_line_usage_errors(value):
    with pytest.raises(UsageError) as e:
        parse_host_server(value)
    assert "\n" not in str(e.value) and str(e.value).startswith("--server")


def test_duplicate_names_or_pids_are_refused():
    with pytest.raises(UsageError, match="name chat given twice"):
        parse_host_servers(["chat=1", "chat=2"])
    with pytest.raises(UsageError, match="PID 1 given twice"):
        parse_host_servers(["chat=1", "code=1"])


@pytest.fixture
def server(tmp_path):
    """A real local process whose command line is a llama-server's (a sleeping Python script
    named llama-server), started in tmp_path with a relative -m, and its log file."""
    model = write_sparse_gguf(tmp_path / "l1b-q8.gguf", LLAMA_SHAPES["l1b-q8"])
    prog = tmp_path / "llama-server"
    prog.write_text("import time\ntime.sleep(120)\n")
    log = tmp_path / "chat.log"
    log.write_text((TRUTH / "logs" / "q8-1b-ngl99-c4096-np2.log").read_text())
    env = {**os.environ, "LLAMA_ARG_UBATCH": "512", "SOME_TOKEN": "secret"}
    p = subprocess.Popen([sys.executable, str(prog), "-m", model.name, *ARGS], cwd=tmp_path, env=env)
    try:
        yield p, model, log
    finally:
        p.kill()
        p.wait(timeout=10)


def test_host_services_read_proc(server):
    p, model, log = server
    [s] = host_services([HostServer("inference-chat", p.pid, log)])
    assert s.name == "inference-chat" and s.pid == p.pid and s.container_id is None
    assert s.argv[-len(ARGS) - 2:] == ["-m", "l1b-q8.gguf", *ARGS]
    assert s.model_path == model                    # relative -m, resolved against its cwd
    assert s.env == {"LLAMA_ARG_UBATCH": "512"}     # nothing but LLAMA_ARG_*
    assert "CUDA0 model buffer size" in s.log_text


def test_host_services_errors(tmp_path, server):
    p, _, _ = server
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    with pytest.raises(UsageError, match=f"no process {gone.pid}"):
        host_services([HostServer("x", gone.pid)])
    with pytest.raises(UsageError, match="cannot read log file"):
        host_services([HostServer("x", p.pid, tmp_path / "missing.log")])
    # a wrapper's PID names no model: refused, not reported empty.  A child of its own, not this
    # test's process: under `python -m pytest` that one's argv has `-m pytest`, read as a model
    wrapper = subprocess.Popen(["sleep", "60"])
    try:
        with pytest.raises(UsageError, match="names no model"):
            host_services([HostServer("x", wrapper.pid)])
    finally:
        wrapper.kill()
        wrapper.wait(timeout=10)


def test_report_attributes_a_host_process_by_pid(tmp_path, server):
    """The three columns for a server with no container: plan from its /proc command line and
    GGUF, engine from its log (the real H200 log), NVML from its PID."""
    p, _, log = server
    services = host_services([HostServer("inference-chat", p.pid, log)])
    fake = FakeNvml([FakeGpu(total_mib=143771, used_mib=2047, compute=[(p.pid, 2038), (1, 100)])])
    clock = FakeClock()
    run = RunDir(tmp_path / "run")
    try:
        options = GpuReportOptions(duration_s=0.4, interval_s=0.1, device=None,
                                   tolerance_pct=1.0, budget_file=None)
        res, text = run_gpu_report(run, services, options, nvml=fake, resolver=lambda cid: None,
                                   clock=clock, sleep=clock.sleep)
    finally:
        run.close()
    e = res.metrics["per_service"]["inference-chat"]
    assert e["pids"] == [p.pid] and e["measured_mib"] == pytest.approx(2038)
    assert e["formula_buffers_mib"] == pytest.approx(1446.4, abs=0.1)
    assert e["engine_reported_mib"] == pytest.approx(1446.42) and e["engine_fit"] == "no changes"
    att = res.details["attribution"]["pids"][str(p.pid)]
    assert att["service"] == "inference-chat" and att["via"] == "pid"
    assert res.details["processes"]["1"]["service"] == "unattributed"
    assert res.details["calibration"]["measured"]["inference-chat"]["overhead_mib"] == \
        pytest.approx(2038 - 1446.42, abs=0.1)
    assert "inference-chat" in text


def test_named_pid_wins_over_its_cgroup(tmp_path):
    proc = tmp_path / "proc"
    (proc / "5").mkdir(parents=True)
    (proc / "5" / "cgroup").write_text("0::/docker/" + "a" * 64 + "\n")
    att = Attributor(proc_root=proc, root=tmp_path, pids={5: "chat"},
                     resolver=lambda cid: "other").attribute([5])
    assert att.pids[5].service == "chat" and att.pids[5].via == "pid"


def _cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{SRC}", "PATH": str(tmp_path / "nobin"),
           "DOCKER_HOST": f"unix://{tmp_path}/no-docker.sock"}
    # DOCKER_HOST names no engine, and the project is one no stack uses besides: the test never
    # reads the operator's `llmops` stack
    return subprocess.run([sys.executable, "-m", "llmops", "--project-dir", str(SRC.parent),
                           "--project-name", f"llmops-e2e-gpuhost-{secrets.token_hex(6)}",
                           "--evidence-dir", str(tmp_path / "ev"), "gpu-report", "--duration", "0.3",
                           *args], capture_output=True, text=True, env=env, timeout=60)


def test_cli_server_by_pid_without_docker(tmp_path, server):
    """The real CLI, a fake GPU (state file) that lists the real process's PID, no Docker."""
    p, _, log = server
    state = tmp_path / "gpu.json"
    state.write_text(json.dumps({"used": 2047.0, "procs": [[p.pid, 2038.0]]}))
    write_pynvml_shim(tmp_path, state)
    r = _cli(tmp_path, "--server", f"inference-chat={p.pid}:{log}")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Traceback" not in r.stderr and "no stack to attribute" not in r.stderr
    j = json.loads(next((tmp_path / "ev").glob("2*/06_gpu_memory.json")).read_text())
    e = j["metrics"]["per_service"]["inference-chat"]
    assert e["pids"] == [p.pid] and e["engine_reported_mib"] == pytest.approx(1446.42)
    assert j["status"] == "pass" and j["details"]["calibration"]["overhead_mib"]["quantized"]


def test_a_python_dash_m_process_is_not_a_llama_server(tmp_path):
    # `python -m sleeper` has an -m: it was accepted and `sleeper` read as the model file
    (tmp_path / "sleeper.py").write_text("import time\ntime.sleep(60)\n")
    p = subprocess.Popen([sys.executable, "-m", "sleeper"], cwd=tmp_path)
    try:
        with pytest.raises(UsageError) as ei:
            host_services([HostServer("chat", p.pid)])
        msg = str(ei.value)
        assert f"process {p.pid} runs `{sys.executable} -m sleeper`, not a llama-server" in msg
        assert ei.value.exit_code == 2 and "\n" not in msg
    finally:
        p.kill()
        p.wait(timeout=10)


def test_an_executable_named_llama_server_needs_no_gguf_suffix(tmp_path):
    from llmops.gpu.hostproc import _require_llama_server

    _require_llama_server(HostServer("chat", 1), ["/usr/local/bin/llama-server", "-m", "/m/model.bin"], "/m/model.bin")
    _require_llama_server(HostServer("chat", 1), ["python", "llama-server", "-m", "m.GGUF"], "m.GGUF")


@pytest.mark.parametrize("value, msg", [("chat", "expected NAME=PID"),
                                        ("chat=999999999", "no process 999999999")])
def test_cli_bad_server_is_exit_2_in_one_line(tmp_path, value, msg):
    r = _cli(tmp_path, "--server", value)
    assert r.returncode == 2, r.stdout + r.stderr
    assert r.stderr.strip().count("\n") == 0 and msg in r.stderr and "Traceback" not in r.stderr
    assert not list((tmp_path / "ev").glob("2*/06_gpu_memory.json"))


def test_inside_a_container_a_server_named_by_pid_gets_no_container_note(tmp_path):
    proc = tmp_path / "proc"
    for pid in (5, 6):
        (proc / str(pid)).mkdir(parents=True)
        (proc / str(pid) / "cgroup").write_text("0::/init.scope\n")      # plain host processes
    named = Attributor(proc_root=proc, root=tmp_path, pids={5: "chat"}, in_container="/.dockerenv exists",
                       resolver=lambda cid: None).attribute([5])
    assert named.pids[5].service == "chat" and named.notes == []
    unnamed = Attributor(proc_root=proc, root=tmp_path, in_container="/.dockerenv exists",
                         resolver=lambda cid: None).attribute([6])
    assert any("no GPU PID carries a container cgroup" in n for n in unnamed.notes)
