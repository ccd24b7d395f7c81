"""scripts/gpu-device-run.sh and its phases, dry-run without a GPU: a fake llama-server
(tests/fake_llama_server.py) and llmops.testing.nvml's fake pynvml shared through a state file.
The device run itself can happen only on a lent GPU; this proves the plumbing around it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

from llmops.testing.gguf_shapes import LLAMA_SHAPES, write_sparse_gguf
from llmops.testing.nvml import write_pynvml_shim

REPO = Path(__file__).resolve().parent.parent


def test_device_script_parses():
    p = subprocess.run(["bash", "-n", str(REPO / "scripts" / "gpu-device-run.sh")],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr


def test_phases_dry_run(tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    write_sparse_gguf(models / "l1b-q8.gguf", LLAMA_SHAPES["l1b-q8"])
    write_sparse_gguf(models / "l3b-q4.gguf", LLAMA_SHAPES["l3b-q4"])
    state = tmp_path / "gpu.json"
    state.write_text(json.dumps({"used": 9.0, "procs": []}))
    write_pynvml_shim(tmp_path, state)
    server = tmp_path / "llama-server"
    server.write_text(f'#!/bin/sh\nexec {sys.executable} {REPO / "tests" / "fake_llama_server.py"} "$@"\n')
    server.chmod(0o755)
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{REPO / 'src'}",
           "FAKE_NVML_STATE": str(state), "PATH": f"{tmp_path / 'nobin'}{os.pathsep}/usr/bin:/bin"}
    out = tmp_path / "out"
    p = subprocess.run([sys.executable, str(REPO / "scripts" / "gpu-device-phases.py"),
                        "--server-bin", str(server), "--models", str(models),
                        "--work", str(tmp_path / "work"), "--out", str(out),
                        "--deadline", str(time.time() + 150), "--duration", "0.3",
                        "--only", "A,B,C1"], capture_output=True, text=True, env=env, timeout=240)
    assert p.returncode == 0, p.stdout + p.stderr
    res = json.loads((out / "results.json").read_text())
    assert set(res["phases"]) == {"A-profile-pair", "B-heldout-pair", "C1-fit-auto"}
    a, b, c1 = (res["phases"][k] for k in ("A-profile-pair", "B-heldout-pair", "C1-fit-auto"))
    for r in a["rows"] + b["rows"]:
        # the fake prints llmops' own plan as its buffer lines: plan = engine, NVML = + 592
        assert r["healthy_s"] is not None and r["error"] is None
        assert abs(r["plan_buffers_vs_engine_pct"]) < 0.01
        assert r["nvml_report_mib"] == r["engine_mib"] + 592.0 or \
            abs(r["nvml_report_mib"] - r["engine_mib"] - 592.0) < 0.2
    assert a["report"]["calibration"]["measured"]["inference-code"]["overhead_mib"] == 592.0
    assert b["plan_calibrated"]["calibration"]["source"] != "default"      # planned with A's
    assert [s["pids"] for s in b["report"]["per_service"].values()] == \
        [[r["pid"]] for r in b["rows"]]                                   # attributed by PID
    assert c1["rows"][0]["plan_fit_changes"] and "-fitt" in c1["rows"][0]["args"]
    assert "-fitt" in res["fit_target"]
    assert "inference-chat" in p.stdout and "plan buf" in p.stdout
    with tarfile.open(out / "gpu-run.tar.gz") as t:
        names = t.getnames()
    assert "gpu-run/A-profile-pair/inference-chat.log" in names
    assert any(n.endswith("06_gpu_memory.json") for n in names)
    assert json.loads(state.read_text())["procs"] == []                   # every server stopped


def test_a_server_that_dies_is_a_row_with_its_error(tmp_path, capsys):
    """A server that exits before /health (a build or CUDA problem on the device) must not stop
    the run: its row carries the error and the table still prints."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("phases", REPO / "scripts" / "gpu-device-phases.py")
    m = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(m)
    model = write_sparse_gguf(tmp_path / "l1b-q8.gguf", LLAMA_SHAPES["l1b-q8"])
    s = m.Server("inference-chat", model, "-c 4096", 18999, tmp_path)
    assert not s.start("/bin/false", ready_s=10)
    assert "exited 1" in s.error
    [row] = m.rows_for([s], None, None, None, {})
    assert row["error"] == s.error and row["engine_mib"] is None and row["nvml_report_mib"] is None
    m.print_table([row])
    assert "ERROR: exited 1" in capsys.readouterr().out
