"""Benchmark: the Qdrant outage experiment N times per mode; median/max of rag's degraded /health
latency, of how long /health took to say qdrant:false, and of the reconnect time; plus rag's /health
on the healthy stack (latency, and any false "down" reading).

It runs against one named compose project and its host ports, never the operator's `llmops` stack:
  .venv/bin/python scripts/bench/qdrant.py --project-name llmops-e2e-svc --port-base 24000 \
      [--runs N] [--modes stop,kill,pause] [--healthy-s 30]
(--project-name defaults to $LLMOPS_E2E_PROJECT, --port-base to $LLMOPS_E2E_PORT_BASE.)
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import httpx
from common import med, mx, run_check, save, table

# The compose files' host-port variables, in the order of the e2e suite's port block.
PORT_VARS = ("GATEWAY_PORT", "CHAT_PORT", "RAG_PORT", "EMBEDDING_PORT", "CODE_PORT", "QDRANT_PORT")


def healthy_health(rag_url: str, seconds: float) -> dict[str, object]:
    """rag /health polled at about 20 Hz on the healthy stack: latency and false "down" readings."""
    lat, down, end = [], 0, time.monotonic() + seconds
    with httpx.Client(timeout=5) as c:
        while time.monotonic() < end:
            t = time.monotonic()
            body = c.get(f"{rag_url}/health").json()
            lat.append(time.monotonic() - t)
            down += body.get("qdrant") is not True or body.get("embedding") is not True
            time.sleep(0.05)
    return {"samples": len(lat), "false_down": down, "p50_s": round(statistics.median(lat), 4),
            "max_s": round(max(lat), 4)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--modes", default="stop,kill,pause")
    ap.add_argument("--project-name", default=os.environ.get("LLMOPS_E2E_PROJECT"))
    ap.add_argument("--port-base", type=int, default=int(os.environ.get("LLMOPS_E2E_PORT_BASE", "0")) or None)
    ap.add_argument("--healthy-s", type=float, default=30.0)
    a = ap.parse_args()
    if not a.project_name or a.project_name == "llmops" or not a.port_base:
        ap.error("name the stack to break: --project-name (not `llmops`) and --port-base")
    env = {v: str(a.port_base + i) for i, v in enumerate(PORT_VARS)}
    target = ["--project-name", a.project_name]
    data: dict[str, object] = {"project": a.project_name, "port_base": a.port_base}
    healthy = healthy_health(f"http://127.0.0.1:{a.port_base + 2}", a.healthy_s)
    data["healthy"] = healthy
    rows = []
    for mode in a.modes.split(","):
        res = []
        for _ in range(a.runs):
            code, r = run_check([*target, "chaos", "qdrant", "--mode", mode, "--outage", "4", "--no-data-safety"],
                                "05_qdrant_retry_test", env=env)
            m = r["metrics"]
            res.append({"exit": code, **{k: m.get(k) for k in (
                "degraded_health_latency_s", "degraded_health_p50_s", "health_detect_s", "health_samples_judged",
                "outage_query_status", "outage_query_max_latency_s", "reconnect_time_s", "points_before",
                "points_after", "restored")}})
        data[mode] = res
        col = lambda k: [x[k] for x in res]  # noqa: E731
        rows.append([mode, len(res), med(col("degraded_health_p50_s")), mx(col("degraded_health_latency_s")),
                     med(col("health_detect_s")), mx(col("health_detect_s")),
                     med(col("reconnect_time_s")), mx(col("reconnect_time_s")), mx(col("outage_query_max_latency_s")),
                     ",".join(sorted({str(s) for s in col("outage_query_status")})),
                     sum(1 for x in res if x["points_before"] == x["points_after"]),
                     sum(1 for x in res if x["exit"] == 0)])
    md = table(["mode", "runs", "degraded /health p50 (s)", "degraded /health max (s)",
                "qdrant:false after (median, s)", "qdrant:false after (max, s)", "reconnect median (s)",
                "reconnect max (s)", "slowest outage query (s)", "outage status", "runs with no points lost",
                "runs exit 0"], rows)
    md += (f"\n\nhealthy stack, rag /health polled {healthy['samples']} times over {a.healthy_s:g} s: "
           f"median {healthy['p50_s']} s, max {healthy['max_s']} s, false \"down\" readings: {healthy['false_down']}")
    save("qdrant", data, md)


if __name__ == "__main__":
    main()
