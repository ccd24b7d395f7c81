#!/usr/bin/env python3
"""A stand-in llama-server for dry runs of scripts/gpu-device-run.sh without a GPU.

Takes a llama-server command line, prints the log lines llmops reads (buffer sizes as llmops'
own plan computes them, the fit projection, the CUDA0 free-memory line), serves /health and
/completion on --port, and registers its PID and memory (buffers + 592 MiB) in the fake GPU's
state file ($FAKE_NVML_STATE, read by the pynvml shim of llmops.testing.nvml), removing itself
on SIGTERM.  `--version` prints a version.  Not a test module (no test_ prefix).
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

OVERHEAD_MIB = 592.0
TOTAL_MIB = 81559.0


def update_state(pid: int, mib: float | None) -> None:
    path = os.environ.get("FAKE_NVML_STATE")
    if not path:
        return
    with open(path + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        p = Path(path)
        st = json.loads(p.read_text()) if p.exists() else {"used": 0.0, "procs": []}
        procs = [x for x in st["procs"] if x[0] != pid]
        if mib is not None:
            procs.append([pid, mib])
        st = {"used": sum(m for _, m in procs) + 9.0, "procs": procs}
        tmp = p.with_suffix(".tmp")
        tmp.write_text(json.dumps(st))
        tmp.replace(p)


def main() -> int:
    argv = sys.argv[1:]
    if "--version" in argv:
        print("version: 0 (fake)\nbuilt with fake for x86_64")
        return 0
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
    from llmops.gpu.budget import budget_for_llama
    from llmops.gpu.llamaargs import parse_server_args

    port = int(argv[argv.index("--port") + 1])
    opts = parse_server_args(argv)
    b = budget_for_llama(opts.model_arg, argv)
    free = TOTAL_MIB - 600 - json.loads(Path(os.environ["FAKE_NVML_STATE"]).read_text())["used"] \
        if os.environ.get("FAKE_NVML_STATE") and Path(os.environ["FAKE_NVML_STATE"]).exists() \
        else TOTAL_MIB - 600
    p = b.params
    print(f"0.00.400.000 I cmn  common_param:   - CUDA0   : Fake GPU ({TOTAL_MIB - 616:.0f} MiB, {free:.0f} MiB free)")
    print("0.00.412.603 I common_params_fit_impl: getting device memory data for initial parameters:")
    print(f"0.00.865.367 I common_params_fit_impl: projected to use {b.buffers_mib:.0f} MiB of device memory "
          f"vs. {free:.0f} MiB of free device memory")
    print(f"0.00.865.379 I common_params_fit_impl: will leave {free - b.buffers_mib:.0f} >= "
          f"{opts.fit_target_mib:.0f} MiB of free device memory, no changes needed")
    print(f"0.01.453.943 I load_tensors: offloaded {p['n_gpu_layers']}/{p['n_layer'] + 1} layers to GPU")
    print(f"0.01.453.951 I load_tensors:        CUDA0 model buffer size = {b.weights_mib:8.2f} MiB")
    print(f"0.01.925.807 I llama_context: n_ctx                 = {p['n_ctx']}")
    print(f"0.02.221.938 I llama_kv_cache:      CUDA0 KV buffer size = {b.kv_cache_mib:8.2f} MiB")
    print(f"0.02.238.346 I sched_reserve:      CUDA0 compute buffer size = {b.compute_mib:8.2f} MiB")
    sys.stdout.flush()
    update_state(os.getpid(), b.buffers_mib + OVERHEAD_MIB)

    def bye(*_: object) -> None:
        update_state(os.getpid(), None)
        os._exit(0)

    signal.signal(signal.SIGTERM, bye)

    class H(BaseHTTPRequestHandler):
        def log_message(self, *a: object) -> None:
            pass

        def _send(self, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._send({"status": "ok"})

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self._send({"content": " fake", "tokens_predicted": 8})

    HTTPServer(("127.0.0.1", port), H).serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
