"""Benchmark: the Qdrant outage experiment N times per mode; median/max of rag's degraded /health
latency and of the reconnect time.

Usage: .venv/bin/python scripts/bench/qdrant.py [--runs N] [--modes stop,kill,pause]
"""

from __future__ import annotations

import argparse

from common import med, mx, run_check, save, table


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--modes", default="stop,kill,pause")
    a = ap.parse_args()
    data, rows = {}, []
    for mode in a.modes.split(","):
        res = []
        for _ in range(a.runs):
            code, r = run_check(["chaos", "qdrant", "--mode", mode, "--outage", "4", "--no-data-safety"],
                                "05_qdrant_retry_test")
            m = r["metrics"]
            res.append({"exit": code, **{k: m.get(k) for k in (
                "degraded_health_latency_s", "outage_query_status", "outage_query_max_latency_s",
                "reconnect_time_s", "points_before", "points_after", "restored")}})
        data[mode] = res
        col = lambda k: [x[k] for x in res]  # noqa: E731
        rows.append([mode, len(res), med(col("degraded_health_latency_s")), mx(col("degraded_health_latency_s")),
                     med(col("reconnect_time_s")), mx(col("reconnect_time_s")), mx(col("outage_query_max_latency_s")),
                     ",".join(sorted({str(s) for s in col("outage_query_status")})),
                     sum(1 for x in res if x["points_before"] == x["points_after"]),
                     sum(1 for x in res if x["exit"] == 0)])
    md = table(["mode", "runs", "degraded /health median (s)", "degraded /health max (s)", "reconnect median (s)",
                "reconnect max (s)", "slowest outage query (s)", "outage status", "runs with no points lost",
                "runs exit 0"], rows)
    save("qdrant", data, md)


if __name__ == "__main__":
    main()
