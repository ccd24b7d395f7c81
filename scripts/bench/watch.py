"""Benchmark: the CPU `llmops watch` costs at --interval 5 (the issue's bound: under 1 % of a core).

Each run starts the real `llmops watch --interval 5` as a subprocess, waits for its first round
(so start-up and imports are left out), then reads its CPU time, user + system of all its
threads, from /proc/PID/stat, for --minutes, while a scraper reads /metrics every --scrape-every
seconds as a Prometheus at its default interval would.  CPU % = CPU seconds / wall seconds of
one core.  Median and max over --runs, quiet and with --busy.

Two targets:
- default: llmops' own running stack (`llmops up` first), through Docker as `watch` finds it;
  --busy is scripts/bench/busy.py's load (two CPU loops and container churn);
- --stand-ins: real local HTTP servers standing in for the six services (tests/watch_standins.py:
  llama-server's /health and /metrics, a gateway that forwards to them, rag, Qdrant), given with
  --target: no Docker, so no engine call per round and no container churn in --busy (CPU loops
  only).  It also counts the requests the gateway got per round.

Usage: PYTHONPATH=src .venv/bin/python scripts/bench/watch.py [--stand-ins] [--runs 3] [--minutes 5]
           [--interval 5] [--scrape-every 15] [--busy]
Writes docs/bench/watch[-standins][-busy].{json,md}.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

from busy import CPU_LOOP, busy
from common import LLMOPS, ROOT, med, mx, save, table

sys.path.insert(0, str(ROOT / "tests"))
from watch_standins import Stack  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of the process (all its threads), from /proc/PID/stat."""
    text = open(f"/proc/{pid}/stat").read()
    fields = text[text.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / TICK          # fields 14 and 15 of stat(5)


def rss_mib(pid: int) -> float:
    m = re.search(r"^VmRSS:\s+(\d+) kB", open(f"/proc/{pid}/status").read(), re.M)
    return round(int(m.group(1)) / 1024, 1) if m else 0.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape(url: str) -> dict[str, float]:
    body = urllib.request.urlopen(url, timeout=5).read().decode()
    out = {}
    for line in body.splitlines():
        if line and not line.startswith("#") and "{" not in line:
            name, _, value = line.partition(" ")
            out[name] = float(value)
    return out


def wait_rounds(url: str, n: int, timeout: float = 120) -> dict[str, float]:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        with contextlib.suppress(OSError):
            got = scrape(url)
            if got.get("llmops_watch_cycles_total", 0) >= n:
                return got
        time.sleep(0.2)
    raise SystemExit(f"watch made no round {n} in {timeout} s")


def one_run(args: argparse.Namespace, stand: Stack | None) -> dict[str, Any]:
    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    extra = stand.target_args() if stand else []
    env = {**os.environ, **({"LITELLM_MASTER_KEY": Stack.KEY} if stand else {})}
    p = subprocess.Popen([*LLMOPS, "watch", "--interval", str(args.interval), "--listen", f"127.0.0.1:{port}", *extra],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    try:
        first = wait_rounds(url, 1)
        posts0 = sum(1 for r in stand.gateway.requests if r[0] == "POST") if stand else 0
        c0, t0 = cpu_seconds(p.pid), time.monotonic()
        end = t0 + args.minutes * 60
        while time.monotonic() < end:
            time.sleep(min(args.scrape_every, max(0.0, end - time.monotonic())))
            last = scrape(url)
        c1, t1 = cpu_seconds(p.pid), time.monotonic()
        rss = rss_mib(p.pid)
    finally:
        p.send_signal(signal.SIGTERM)
        _out, err = p.communicate(timeout=30)
    rounds = last["llmops_watch_cycles_total"] - first["llmops_watch_cycles_total"]
    posts = (sum(1 for r in stand.gateway.requests if r[0] == "POST") - posts0) if stand else None
    return {"wall_s": round(t1 - t0, 1), "cpu_s": round(c1 - c0, 3), "cpu_pct": round(100 * (c1 - c0) / (t1 - t0), 3),
            "rounds": int(rounds), "cpu_ms_per_round": round(1000 * (c1 - c0) / rounds, 1) if rounds else None,
            "overruns": int(last["llmops_watch_overruns_total"]), "rss_mib": rss, "exit": p.returncode,
            "gateway_requests_per_round": round(posts / rounds, 2) if posts is not None and rounds else None,
            "scrape_duration_s": round(last["llmops_watch_scrape_duration_seconds"], 4),
            "stderr_tail": err[-300:]}


@contextlib.contextmanager
def cpu_loops(n: int, max_s: float) -> Iterator[dict[str, object]]:
    procs = [subprocess.Popen([sys.executable, "-c", CPU_LOOP, str(max_s)]) for _ in range(n)]
    try:
        time.sleep(2)
        yield {"cpu_loops": n, "container_churn": None}
    finally:
        for q in procs:
            q.terminate()
            q.wait(timeout=10)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--minutes", type=float, default=5.0)
    ap.add_argument("--interval", type=float, default=5.0)
    ap.add_argument("--scrape-every", type=float, default=15.0)
    ap.add_argument("--busy", action="store_true")
    ap.add_argument("--stand-ins", action="store_true")
    args = ap.parse_args()
    stand = Stack() if args.stand_ins else None
    total = args.runs * (args.minutes * 60 + 60)
    load = (cpu_loops(2, total) if stand else busy(max_s=total)) if args.busy else contextlib.nullcontext({})
    try:
        with load as info:
            runs = [one_run(args, stand) for _ in range(args.runs)]
    finally:
        if stand:
            stand.close()
    pct = [r["cpu_pct"] for r in runs]
    name = "watch" + ("-standins" if stand else "") + ("-busy" if args.busy else "")
    target = "six local HTTP stand-ins (--target, no Docker)" if stand else "llmops' own stack (Docker)"
    md = "\n".join([
        f"# `llmops watch --interval {args.interval:g}`: CPU ({target}{', busy' if args.busy else ''})", "",
        f"{datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}, {args.runs} runs of {args.minutes:g} min, "
        f"/metrics scraped every {args.scrape_every:g} s; CPU from /proc/PID/stat after the first round.", "",
        table(["run", "wall s", "CPU s", "CPU % of a core", "rounds", "CPU ms/round", "overruns", "gateway req/round", "RSS MiB"],
              [[i + 1, r["wall_s"], r["cpu_s"], r["cpu_pct"], r["rounds"], r["cpu_ms_per_round"], r["overruns"],
                r["gateway_requests_per_round"], r["rss_mib"]] for i, r in enumerate(runs)]), "",
        f"median {med(pct)} %, max {mx(pct)} % of one core (bound: < 1 %)."])
    save(name, {"args": vars(args), "target": target, "load": info, "runs": runs,
                "median_cpu_pct": med(pct), "max_cpu_pct": mx(pct)}, md)


if __name__ == "__main__":
    main()
