"""scripts/gpu-check's logic with a fake NVML and fake torch children (the real run needs a GPU)."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import sys
import uuid
from pathlib import Path

import pytest

from llmops.testing.nvml import FakeNvml, StateFileGpu, write_pynvml_shim

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "gpu-check"


def load_script():
    loader = importlib.machinery.SourceFileLoader("gpu_check_script", str(SCRIPT))
    spec = importlib.util.spec_from_loader("gpu_check_script", loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


class FakeChild:
    def __init__(self, pid):
        self.pid = pid
        self.stopped = False

    def poll(self):
        return 0 if self.stopped else None


@pytest.mark.parametrize("ctx, alloc, attributed, per_process, code", [
    (500.0, 1024, 1524.0, True, 0),          # exactly allocated + context
    (500.0, 1024, 1524.0 * 1.03, True, 1),   # 3% over: out of bounds
    (480.0, 1024, 1500.0, False, 0),         # no per-process memory: device deltas used
])
def test_gpu_check_logic(monkeypatch, tmp_path, capsys, ctx, alloc, attributed, per_process, code):
    """The script runs the real `python -m llmops gpu-report` in a child process; parent and child
    share one fake GPU through a state file (pynvml shim first on the child's PYTHONPATH)."""
    mod = load_script()
    state_file = tmp_path / "gpu-state.json"
    state = {"used": 100.0, "procs": [[9, 90.0]]}
    state_file.write_text(json.dumps(state))
    shim_dir = tmp_path / "shim"
    shim_dir.mkdir()
    write_pynvml_shim(shim_dir, state_file)
    monkeypatch.setenv("PYTHONPATH", str(shim_dir))
    fake = FakeNvml([StateFileGpu(total_mib=81559, state_file=str(state_file))])
    monkeypatch.setattr("llmops.gpu.nvml.load_nvml", lambda: (fake, []))

    def spawn(python, n_mib, timeout_s):
        pid = 4242 if n_mib else 4141
        mem = (attributed if n_mib else ctx)
        state["procs"].append([pid, mem if per_process else None])
        state["used"] += mem
        state_file.write_text(json.dumps(state))
        return FakeChild(pid), {"pid": pid, "device": "Fake"}

    monkeypatch.setattr(mod, "spawn", spawn)
    monkeypatch.setattr(mod, "stop", lambda p: setattr(p, "stopped", True) if p else None)
    monkeypatch.setattr(mod.time, "sleep", lambda s: None)
    ev = tmp_path / "ev"
    # A project no stack uses: gpu-report must not find the operator's `llmops` stack (if one is
    # up) and add its model servers to the budget this test states.
    project = f"llmops-e2e-gpucheck-{uuid.uuid4().hex[:12]}"
    monkeypatch.setattr(sys, "argv", ["gpu-check", "--alloc-mib", str(alloc), "--duration", "0.3",
                                      "--interval", "0.1", "--evidence-dir", str(ev),
                                      "--project-name", project])
    rc = mod.main()
    out = capsys.readouterr().out
    assert rc == code, out
    assert f"CUDA context: {ctx:.1f} MiB" in out
    err = 100 * (attributed - (alloc + ctx)) / (alloc + ctx)
    assert f"({err:+.2f}%)" in out
    assert "sampler CPU:" in out
    assert ("device 'used' delta" in out) == (not per_process)
    doc = json.loads(next(ev.glob("*/06_gpu_memory.json")).read_text())
    # the budget file states what should be on the GPU: what was there, two contexts, the tensor
    assert doc["metrics"]["expected_mib"] == pytest.approx(100 + 2 * ctx + alloc, abs=0.01), out
    assert list(doc["metrics"]["per_service"]) == ["gpu-check-alloc"], out
    manifest = json.loads(next(ev.glob("*/manifest.json")).read_text())
    assert manifest["project"] == project
    assert doc["status"] == ("pass" if code == 0 else "fail"), out
    assert f"llmops gpu-report exit code: {code}" in out


def test_gpu_check_skips_without_nvml(monkeypatch, capsys):
    mod = load_script()
    from llmops.gpu.nvml import NvmlUnavailable

    def boom():
        raise NvmlUnavailable("NVML init failed: Driver Not Loaded")

    monkeypatch.setattr("llmops.gpu.nvml.load_nvml", boom)
    monkeypatch.setattr(sys, "argv", ["gpu-check"])
    assert mod.main() == 3
    assert "SKIPPED: NVML init failed" in capsys.readouterr().out


def test_find_nvml_pid_across_namespaces():
    mod = load_script()
    assert mod.find_nvml_pid(10, {1}, {1: 5.0, 10: 7.0})[0] == 10
    pid, how = mod.find_nvml_pid(10, {1}, {1: 5.0, 777: 7.0})
    assert pid == 777 and "namespace" in how
    assert mod.find_nvml_pid(10, {1}, {1: 5.0, 777: 7.0, 778: 1.0})[0] is None


def test_three_way_table_from_real_llama_server_logs(tmp_path):
    """The llama-server path's comparison, fed with the real H200 logs and NVML figures and a
    real `gpu-plan` of sparse models of the same shapes."""
    from llmops.gpu.plan import plan_servers, spec_from_args
    from llmops.testing.gguf_shapes import LLAMA_SHAPES, write_sparse_gguf

    mod = load_script()
    data = Path(__file__).parent / "data" / "gpu-truth"
    runs = {json.loads(x)["name"]: json.loads(x) for x in (data / "results.jsonl").read_text().splitlines()}
    pair = ["pair-chat-q8-1b-ngl99-c4096-np2", "pair-code-f16-3b-ngl12-c8192-np2"]
    for shape in ("l1b-q8", "l3b-f16"):
        write_sparse_gguf(tmp_path / f"{shape}.gguf", LLAMA_SHAPES[shape])
    specs = [spec_from_args(runs[n]["args"].replace("models/", f"{tmp_path}/"), i) for i, n in enumerate(pair)]
    plan = plan_servers(specs, gpu_mib=None, gpu_source="none")
    names = [s["name"] for s in plan.to_json()["servers"]]
    rows = mod.three_way(plan.to_json(), {n: (data / "logs" / f"{r}.log").read_text() for n, r in zip(names, pair)},
                         {n: runs[r]["nvml_pid_mib"] for n, r in zip(names, pair)})
    assert [r["engine_mib"] for r in rows] == pytest.approx([1446.42, 3327.77])
    assert all(abs(r["plan_error_pct"]) < 2 and abs(r["total_error_pct"]) < 2 for r in rows)
    assert [r["overhead_measured_mib"] for r in rows] == pytest.approx([2036 - 1446.42, 4018 - 3327.77], abs=0.1)
    assert rows[1]["offloaded"] == [12, 29] and rows[0]["fit"] == "no changes"
