#!/usr/bin/env python3
"""The measuring half of scripts/gpu-device-run.sh: llama-servers on a real GPU, no Docker.

Per phase: `llmops gpu-plan --json` for the servers' command lines BEFORE they start (with the
default calibration, and with the one measured in phase A where the phase says so); start the
servers one after the other (`-lv 4`, so they print their buffer sizes), one completion each;
`nvidia-smi`; the real `llmops gpu-report --server NAME=PID:LOG` on them; stop them.  Then the
three-way table per server: plan / engine-reported / NVML.

Phases (new configurations, none of them in ../shared/gpu-truth):
  A  the gpu profile's pair, together: 1B Q8_0 and 3B Q4_0, `-c 4096 -np 2 -ngl 99`
     (gpu-report's calibration here is what B and C are planned with)
  B  held out, together: 1B Q8_0 `-c 8192 -np 4 -ctk q8_0 -ctv q8_0` (quantized KV) and
     3B Q4_0 `-c 8192 -np 2 -ngl 20` (partial offload of a quantized model)
  C1 fit: 3B Q4_0 with no -c/-ngl and a -fitt that leaves room for a context between 4096 and
     8192: does llama.cpp lower the context as gpu-plan predicts?
  C2 the same -fitt with `-c 8192 -ngl 99` given: does fit keep values set on the command line?
  D  a sparse GGUF (llmops.testing.gguf_shapes, never loaded by a real server before): same figures as A's
     chat server?

Writes into --out: results.json (rewritten after every phase) and gpu-run.tar.gz (the work
folder: logs, plans, evidence; rewritten after every phase), so a run cut short still returns
what it measured.  Stdout is the human summary.  Stdlib + llmops only.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

T0 = time.monotonic()
PAIR = "-c 4096 -np 2 -ngl 99"          # compose/gpu.yml's defaults (CHAT_CTX, CODE_CTX, *_NGL)


def say(msg: str = "") -> None:
    print(msg, flush=True)


def stamp() -> str:
    return f"[+{time.monotonic() - T0:5.0f}s]"


# ----------------------------------------------------------------------------- processes

def run_py(args: list[str], timeout: float, log: Path | None = None) -> subprocess.CompletedProcess:
    """`python -m llmops ARGS`: the real command line, in its own process."""
    cmd = [sys.executable, "-m", "llmops", *args]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        p = subprocess.CompletedProcess(cmd, 124, exc.stdout or "", f"timed out after {timeout:.0f} s")
    if log is not None:
        log.write_text(f"$ {' '.join(cmd)}\nexit {p.returncode}\n--- stdout\n{p.stdout}\n--- stderr\n{p.stderr}\n")
    return p


def gpu_plan(args: list[str], log: Path) -> tuple[dict | None, int]:
    """`llmops gpu-plan --json ARGS`: its plan (None when it gave none) and its exit code."""
    p = run_py(["gpu-plan", "--json", *args], 60, log)
    return (json.loads(p.stdout) if p.returncode in (0, 1) and p.stdout.strip() else None), p.returncode


def http(url: str, body: dict | None = None, timeout: float = 2.0) -> tuple[int, str]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))   # never a proxy
    req = urllib.request.Request(url, data=json.dumps(body).encode() if body else None,
                                 headers={"Content-Type": "application/json"})
    try:
        with opener.open(req, timeout=timeout) as r:
            return r.status, r.read().decode(errors="replace")
    except Exception as exc:  # noqa: BLE001 - not up yet, or refused
        return 0, f"{type(exc).__name__}: {exc}"


def smi(args: list[str]) -> str:
    if not shutil.which("nvidia-smi"):
        return "nvidia-smi: not found"
    try:
        p = subprocess.run(["nvidia-smi", *args], capture_output=True, text=True, timeout=20)
        return (p.stdout + p.stderr).strip()
    except subprocess.TimeoutExpired:
        return "nvidia-smi: timed out"


def smi_apps() -> dict[int, float]:
    out = smi(["--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"])
    apps = {}
    for line in out.splitlines():
        parts = [x.strip() for x in line.split(",")]
        if len(parts) == 2 and parts[0].isdigit():
            try:
                apps[int(parts[0])] = float(parts[1])
            except ValueError:
                pass
    return apps


class Server:
    def __init__(self, name: str, model: Path, args: str, port: int, folder: Path) -> None:
        self.name, self.model, self.args, self.port = name, model, args, port
        self.log = folder / f"{name}.log"
        self.proc: subprocess.Popen | None = None
        self.healthy_s: float | None = None
        self.error: str | None = None
        self.completion: str | None = None

    @property
    def cmdline(self) -> str:        # what gpu-plan is given: the server's own arguments
        return f"-m {self.model} {self.args}"

    def start(self, binary: str, ready_s: float) -> bool:
        argv = [binary, "-m", str(self.model), *self.args.split(), "-lv", "4",
                "--host", "127.0.0.1", "--port", str(self.port)]
        t = time.monotonic()
        # Same process session as this script: if the run is cut short the servers die with it
        # (a new session would outlive the command and hold GPU memory into a rerun).
        with self.log.open("w") as lf:
            self.proc = subprocess.Popen(argv, stdout=lf, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)
        while time.monotonic() - t < ready_s:
            if self.proc.poll() is not None:
                self.error = f"exited {self.proc.returncode} before /health said ok: {self.tail()}"
                return False
            if http(f"http://127.0.0.1:{self.port}/health")[0] == 200:
                self.healthy_s = round(time.monotonic() - t, 2)
                code, body = http(f"http://127.0.0.1:{self.port}/completion",
                                  {"prompt": "Hello, my name is", "n_predict": 8}, timeout=60)
                self.completion = f"HTTP {code}: {body[:160]}"
                return True
            time.sleep(0.25)
        self.error = f"not healthy after {ready_s:.0f} s: {self.tail()}"
        return False

    def tail(self, n: int = 3) -> str:
        try:
            lines = self.log.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "no log"
        return " | ".join(lines[-n:])

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


# ----------------------------------------------------------------------------- analysis

_CUDA_FREE = re.compile(r"CUDA0\s*:\s*(.+?)\((\d+) MiB, (\d+) MiB free\)")


def cuda_free_seen(log_text: str) -> tuple[float, float] | None:
    """(total, free) MiB the server saw at start, from its `common_param: - CUDA0 : ...` line."""
    m = _CUDA_FREE.search(log_text)
    return (float(m.group(2)), float(m.group(3))) if m else None


def fit_lines(log_text: str) -> list[str]:
    keep = ("common_params_fit", "common_fit_params", "fitting params", "n_ctx ", "offloaded ")
    return [ln.strip()[:220] for ln in log_text.splitlines() if any(k in ln for k in keep)][:20]


def pct(a: float | None, b: float | None) -> float | None:
    from llmops.gpu.analysis import error_pct
    from llmops.rounding import rounded

    return rounded(error_pct(a, b), 3)


def rows_for(servers: list[Server], plan: dict | None, plan_cal: dict | None, report: dict | None,
             apps: dict[int, float]) -> list[dict[str, Any]]:
    from llmops.gpu.llamalog import parse_llama_log

    per = ((report or {}).get("metrics") or {}).get("per_service") or {}
    out = []
    for i, s in enumerate(servers):
        p = (plan or {}).get("servers", [{}] * len(servers))[i] if plan else {}
        pc = (plan_cal or {}).get("servers", [{}] * len(servers))[i] if plan_cal else {}
        e = per.get(s.name) or {}
        text = s.log.read_text(errors="replace") if s.log.exists() else ""
        rep = parse_llama_log(text)
        eng = rep.reported_mib
        nv = e.get("measured_mib")
        pid = s.proc.pid if s.proc else None
        seen = cuda_free_seen(text)
        out.append({
            "name": s.name, "model": s.model.name, "args": s.args, "pid": pid,
            "healthy_s": s.healthy_s, "error": s.error, "completion": s.completion,
            "plan_buffers_mib": p.get("buffers_mib"), "plan_total_mib": p.get("total_mib"),
            "plan_fit_changes": p.get("fit_changes"),
            "plan_n_ctx": p.get("n_ctx"), "plan_n_gpu_layers": p.get("n_gpu_layers"),
            "plan_cal_total_mib": pc.get("total_mib"),
            "report_formula_buffers_mib": e.get("formula_buffers_mib"),
            "engine_mib": eng, "engine_projected_mib": rep.projected_mib,
            "engine_fit": rep.fit, "engine_fit_changes": rep.fit_changes,
            "engine_offloaded": list(rep.offloaded) if rep.offloaded else None,
            "engine_n_ctx": rep.n_ctx, "engine": rep.to_json(),
            "cuda_seen_total_free_mib": list(seen) if seen else None,
            "nvml_report_mib": nv, "nvml_smi_mib": apps.get(pid) if pid else None,
            "plan_buffers_vs_engine_pct": pct(p.get("buffers_mib"), eng),
            "plan_total_vs_nvml_pct": pct(p.get("total_mib"), nv),
            "plan_cal_total_vs_nvml_pct": pct(pc.get("total_mib"), nv),
            "nvml_minus_engine_mib": None if nv is None or eng is None else round(nv - eng, 1),
            "fit_log": fit_lines(text),
        })
    return out


def fmt(v: Any, spec: str = ">8.1f") -> str:
    width = int(re.sub(r"\D", "", spec.split(".")[0]) or 8)
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return format(v, spec)
    return f"{'-' if v is None else str(v):>{width}}"


def print_table(rows: list[dict[str, Any]]) -> None:
    say(f"  {'server':<16}{'plan buf':>9}{'engine':>9}{'err%':>8}{'plan tot':>9}{'+cal A':>9}"
        f"{'NVML':>8}{'smi':>8}{'err%':>8}{'errA%':>8}{'NVML-eng':>9}")
    for r in rows:
        say(f"  {r['name']:<16}{fmt(r['plan_buffers_mib'], '>9.1f')}{fmt(r['engine_mib'], '>9.1f')}"
            f"{fmt(r['plan_buffers_vs_engine_pct'], '>+8.2f')}{fmt(r['plan_total_mib'], '>9.1f')}"
            f"{fmt(r['plan_cal_total_mib'], '>9.1f')}{fmt(r['nvml_report_mib'], '>8.1f')}"
            f"{fmt(r['nvml_smi_mib'], '>8.0f')}{fmt(r['plan_total_vs_nvml_pct'], '>+8.2f')}"
            f"{fmt(r['plan_cal_total_vs_nvml_pct'], '>+8.2f')}{fmt(r['nvml_minus_engine_mib'], '>9.1f')}")
        say(f"    {r['model']} {r['args']} | pid {r['pid']} healthy {r['healthy_s']} s"
            f" | engine fit: {r['engine_fit']} {r['engine_fit_changes'] or ''}"
            f" (n_ctx {r['engine_n_ctx']}, offloaded {r['engine_offloaded']})"
            f" | plan fit: {r['plan_fit_changes'] or 'as asked'}"
            f" (n_ctx {r['plan_n_ctx']}, ngl {r['plan_n_gpu_layers']})"
            f" | CUDA total/free at start {r['cuda_seen_total_free_mib']}")
        if r["error"]:
            say(f"    ERROR: {r['error']}")


# ----------------------------------------------------------------------------- phases

class Run:
    def __init__(self, a: argparse.Namespace) -> None:
        self.a = a
        self.work: Path = a.work
        self.out: Path = a.out
        self.results: dict[str, Any] = {"started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                        "binary": a.server_bin, "phases": {}}
        self.cal_a: Path | None = None
        self.port = 18470

    def left(self) -> float:
        return self.a.deadline - time.time()

    def save(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        tmp = self.out / "results.json.tmp"
        tmp.write_text(json.dumps(self.results, indent=1, default=str))
        tmp.replace(self.out / "results.json")
        tmp = self.out / "gpu-run.tar.gz.tmp"
        with tarfile.open(tmp, "w:gz") as t:
            t.add(self.work, arcname="gpu-run")
        tmp.replace(self.out / "gpu-run.tar.gz")

    def phase(self, name: str, specs: list[tuple[str, Path, str]], *, plan_cal: Path | None,
              report_cal: Path | None, duration: float, need_s: float, note: str = "") -> dict | None:
        if self.a.only and not any(name.startswith(o) for o in self.a.only.split(",")):
            return None
        if self.left() < need_s:
            say(f"{stamp()} phase {name}: SKIPPED, {self.left():.0f} s left < {need_s:.0f} s needed")
            self.results["phases"][name] = {"skipped": f"{self.left():.0f} s left"}
            return None
        folder = self.work / name
        folder.mkdir(parents=True, exist_ok=True)
        say(f"\n{stamp()} ===== phase {name} {note}")
        servers = []
        for n, model, args in specs:
            self.port += 1
            servers.append(Server(n, model, args, self.port, folder))
        res: dict[str, Any] = {"note": note, "args": {s.name: s.cmdline for s in servers}}
        self.results["phases"][name] = res
        plan_args = [x for s in servers for x in ("--server", s.cmdline)]
        # the prediction, before anything starts: NVML's free memory, llama.cpp's defaults
        plan, res["plan_exit"] = gpu_plan(plan_args, folder / "gpu-plan.txt")
        res["plan"] = plan
        plan_c = None
        if plan_cal is not None:
            plan_c, code = gpu_plan(["--calibration", str(plan_cal), *plan_args], folder / "gpu-plan-calibrated.txt")
            res["plan_calibrated"], res["plan_calibrated_exit"] = plan_c, code
        say(f"{stamp()} gpu-plan exit {res['plan_exit']}: total {plan and plan.get('total_mib')} MiB "
            f"on {plan and plan.get('gpu_mib')} MiB ({plan and plan.get('gpu_source')})")
        try:
            for s in servers:
                ok = s.start(self.a.server_bin, min(self.a.ready_s, max(5.0, self.left() - 30)))
                say(f"{stamp()} {s.name}: {'healthy in ' + str(s.healthy_s) + ' s' if ok else s.error}"
                    f"{'; completion ' + (s.completion or '')[:90] if ok else ''}")
            time.sleep(1.0)
            apps = smi_apps()
            res["nvidia_smi_apps"] = {str(k): v for k, v in apps.items()}
            (folder / "nvidia-smi.txt").write_text(smi([]) + "\n\n" + smi(
                ["--query-compute-apps=pid,used_memory", "--format=csv"]) + "\n")
            say(f"{stamp()} nvidia-smi compute apps (pid: MiB): {apps}")
            up = [s for s in servers if s.proc and s.proc.poll() is None]
            report = self.report(up, folder, duration, report_cal, res) if up else None
            # the plan again with this phase's own calibration: is the measured overhead consistent?
            if report and name.startswith("A") and res.get("report_06"):
                plan_c, code = gpu_plan(["--calibration", str(self.work / res["report_06"]), *plan_args],
                                        folder / "gpu-plan-own-calibration.txt")
                res["plan_calibrated"], res["plan_calibrated_exit"] = plan_c, code
        finally:
            for s in servers:
                s.stop()
        rows = rows_for(servers, plan, plan_c, report, apps)
        res["rows"] = rows
        print_table(rows)
        if name.startswith("C"):         # what llama.cpp's fit said, in its own words
            for r in rows:
                for ln in r["fit_log"]:
                    say(f"    | {ln}")
        self.save()
        return res

    def report(self, up: list[Server], folder: Path, duration: float, report_cal: Path | None,
               res: dict[str, Any]) -> dict | None:
        """The real `llmops gpu-report --server NAME=PID:LOG` on the servers that are up; its
        06_gpu_memory.json, summarised into `res`."""
        ev = folder / "evidence"
        # a project of its own: the servers are named by --server, and the manifest
        # must not list an operator's `llmops` stack that happens to be up
        args = ["--project-dir", str(REPO), "--project-name", f"llmops-gpudevice-{os.getpid()}",
                "--evidence-dir", str(ev), "gpu-report",
                "--duration", str(duration), "--interval", "0.1"]
        args += [x for s in up for x in ("--server", f"{s.name}={s.proc.pid}:{s.log}")]
        if report_cal is not None:
            args += ["--calibration", str(report_cal)]
        r = run_py(args, duration + 60, folder / "gpu-report.txt")
        found = sorted(ev.glob("*/06_gpu_memory.json"))
        report = json.loads(found[-1].read_text()) if found else None
        res["report_exit"] = r.returncode
        res["report_06"] = str(found[-1].relative_to(self.work)) if found else None
        say(f"{stamp()} gpu-report exit {r.returncode}"
            + ("" if report else f": no 06_gpu_memory.json ({r.stderr.strip()[-300:]})"))
        if report:
            m, d = report.get("metrics", {}), report.get("details", {})
            res["report"] = {"status": report.get("status"),
                             **{k: m.get(k) for k in ("used_mib", "expected_mib", "error_pct",
                                                      "unattributed_mib", "per_service")},
                             **{k: d.get(k) for k in ("calibration", "attribution", "notes", "memory_api",
                                                      "non_process_mib", "sampling", "gpu_env")}}
            say(f"    report: status {report.get('status')}, used {m.get('used_mib')} MiB vs "
                f"expected {m.get('expected_mib')} ({m.get('error_pct')}%), unattributed "
                f"{m.get('unattributed_mib')} MiB, attribution {d.get('attribution', {}).get('mode')}")
            cal = d.get("calibration") or {}
            say(f"    calibration measured: {cal.get('overhead_mib')} from "
                f"{ {k: v.get('overhead_mib') for k, v in (cal.get('measured') or {}).items()} }")
        return report

    def fit_target(self, model: Path) -> tuple[int, str]:
        """A -fitt that leaves room for the 3B model's buffers at a context between 4096 and
        8192 (-np 1): half way between the two, from what the first server of A saw as free."""
        from llmops.gpu.budget import budget_for_llama

        b8 = budget_for_llama(model, f"-m {model} -c 8192 -np 1").buffers_mib or 0.0
        b4 = budget_for_llama(model, f"-m {model} -c 4096 -np 1").buffers_mib or 0.0
        seen = None
        a = self.results["phases"].get("A-profile-pair") or {}
        for r in a.get("rows") or []:
            if r.get("cuda_seen_total_free_mib"):
                seen = r["cuda_seen_total_free_mib"][1]
                break
        how = "free CUDA memory A's first server saw on the empty card"
        if seen is None:
            from llmops.gpu.plan import detect_free_mib

            free, _ = detect_free_mib()
            seen = (free or 0.0) - 530.0       # the H200 logs: a server sees NVML free - ~526
            how = "NVML free - 530 MiB"
        t = int(seen - (b8 + b4) / 2)
        return t, f"-fitt {t}: {how} {seen:.0f} MiB - (buffers at 8192 {b8:.0f} + at 4096 {b4:.0f}) / 2"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--server-bin", required=True)
    ap.add_argument("--models", type=Path, required=True, help="folder with l1b-q8.gguf, l3b-q4.gguf")
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--deadline", type=float, required=True, help="epoch seconds: skip what won't fit")
    ap.add_argument("--ready-s", type=float, default=120.0)
    ap.add_argument("--duration", type=float, default=5.0, help="gpu-report sampling per pair")
    ap.add_argument("--only", default="", help="comma-separated phase prefixes (A,B,C1,...): a dry run")
    a = ap.parse_args()
    a.work.mkdir(parents=True, exist_ok=True)
    run = Run(a)
    m1, m3 = a.models / "l1b-q8.gguf", a.models / "l3b-q4.gguf"
    missing = [str(m) for m in (m1, m3) if not m.is_file()]
    if missing:
        say(f"ERROR: models missing: {missing}")
        return 2
    say(f"{stamp()} device: {smi(['--query-gpu=name,memory.total,memory.used,memory.reserved,driver_version', '--format=csv,noheader'])}")
    run.results["device"] = smi(["--query-gpu=name,memory.total,memory.used,driver_version", "--format=csv,noheader"])
    run.results["before"] = smi(["--query-compute-apps=pid,used_memory", "--format=csv"])
    try:
        a_res = run.phase("A-profile-pair", [("inference-chat", m1, PAIR), ("inference-code", m3, PAIR)],
                          plan_cal=None, report_cal=None, duration=a.duration, need_s=40,
                          note="(the gpu profile's pair, started in order; calibration measured here)")
        cal = (a.work / a_res["report_06"]) if a_res and a_res.get("report_06") else None
        if cal is None:
            say("no calibration from A: B and C are planned with the default one")
        run.phase("B-heldout-pair",
                  [("inference-chat", m1, "-c 8192 -np 4 -ngl 99 -ctk q8_0 -ctv q8_0"),
                   ("inference-code", m3, "-c 8192 -np 2 -ngl 20")],
                  plan_cal=cal, report_cal=cal, duration=a.duration, need_s=40,
                  note="(held out: quantized KV; partial offload of Q4_0; planned with A's calibration)")
        wants_c = not a.only or any(o.startswith("C") for o in a.only.split(","))
        if wants_c and run.left() > 60:
            t, why = run.fit_target(m3)
            say(f"\n{stamp()} fit target: {why}")
            run.results["fit_target"] = why
            run.phase("C1-fit-auto", [("fit-auto", m3, f"-np 1 -fitt {t}")], plan_cal=cal,
                      report_cal=cal, duration=min(2.0, a.duration), need_s=25,
                      note="(no -c/-ngl: fit may lower the context; plan's prediction vs the log)")
            run.phase("C2-fit-user-set", [("fit-user-set", m3, f"-c 8192 -np 1 -ngl 99 -fitt {t}")],
                      plan_cal=cal, report_cal=cal, duration=min(2.0, a.duration), need_s=25,
                      note="(-c and -ngl given: does fit keep them?)")
        sparse = a.models / "l1b-q8-sparse.gguf"
        if sparse.is_file():
            run.phase("D-sparse-gguf", [("sparse-chat", sparse, PAIR)], plan_cal=cal, report_cal=cal,
                      duration=min(2.0, a.duration), need_s=20,
                      note="(llmops.testing.gguf_shapes sparse file: expect A's inference-chat figures)")
    finally:
        run.results["elapsed_s"] = round(time.monotonic() - T0, 1)
        run.save()
    say(f"\n{stamp()} done; results.json and gpu-run.tar.gz in {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
