"""Benchmark: `llmops --help` start-up, `verify` wall time vs its probe latencies, warm and cold `up`.

Usage: .venv/bin/python scripts/bench/cli.py [--runs N] [--cold]
  --cold also measures `down` + `up` (containers recreated, images present): it restarts the stack.
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import time

from common import llmops, med, mx, run_check, save, table


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--cold", action="store_true")
    a = ap.parse_args()
    helps = []
    for _ in range(a.runs):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "llmops.cli", "--help"], capture_output=True, check=True)
        helps.append(time.perf_counter() - t)
    walls, sums, slowest, ratios = [], [], [], []
    for _ in range(a.runs):
        code, r = run_check(["verify"], "03_health_check")
        m = r["metrics"]
        walls.append(m["wall_s"]); sums.append(m["sum_latency_s"]); slowest.append(m["max_latency_s"])
        ratios.append(m["wall_s"] / m["max_latency_s"])
    warm = []
    for _ in range(3):
        t = time.perf_counter()
        p = llmops("--json", "up")
        assert p.returncode == 0, p.stderr
        warm.append(time.perf_counter() - t)
    cold = []
    if a.cold:
        for _ in range(2):
            assert llmops("down").returncode == 0
            t = time.perf_counter()
            p = llmops("--json", "up", "--wait-timeout", "600")
            assert p.returncode == 0, p.stderr
            cold.append(time.perf_counter() - t)
    data = {"host": platform.node(), "runs": a.runs, "help_s": helps, "verify_wall_s": walls,
            "verify_sum_latency_s": sums, "verify_slowest_probe_s": slowest, "wall_over_slowest": ratios,
            "up_warm_s": warm, "up_cold_s": cold}
    rows = [
        ["`llmops --help` start-up (s)", med(helps), mx(helps), "< 0.5"],
        ["`verify` health sweep wall (s)", med(walls), mx(walls), ""],
        ["`verify` sum of probe latencies (s)", med(sums), mx(sums), ""],
        ["`verify` wall / slowest probe", med(ratios), mx(ratios), "<= 1.5"],
        ["`verify` concurrency ratio (sum / wall)", med([s / w for s, w in zip(sums, walls)]),
         mx([s / w for s, w in zip(sums, walls)]), ""],
        ["`up` on a running stack (s)", med(warm), mx(warm), ""],
    ]
    if cold:
        rows.append(["`down` then `up` to six healthy, images present (s)", med(cold), mx(cold), ""])
    md = table(["measure", "median", "max", "target"], rows)
    save("cli", data, f"{a.runs} runs on {platform.node()} ({platform.machine()}, 2 cores)\n\n" + md)


if __name__ == "__main__":
    main()
