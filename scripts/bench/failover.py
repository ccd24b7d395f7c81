"""Benchmark: the failover experiment N times per mode, with our router settings and with LiteLLM's
default router settings (the peer baseline, compose/litellm/config.defaults.yaml).

Usage: .venv/bin/python scripts/bench/failover.py [--runs N] [--modes stop,kill,pause] [--no-baseline]
                                                  [--fresh] [--no-warm] [--max-tokens N]
                                                  [--project-name P] [--loss-pct P]
Modes: stop, kill, pause (the container) and partition, blackhole, loss (the network between the
gateway and the primary; `loss` drops --loss-pct % of the gateway's packets, default 5).
--project-name runs against another compose project than `llmops` (export its *_PORT variables).
It recreates the gateway to switch configs and puts ours back at the end.  --fresh takes the stack
down, up and verify before every run (certify's situation: the first failover after `up`); --no-warm
skips the warm-ups (`up`'s and the failover pre-flight's), to measure what a cold standby costs.

Run i of N injects its fault at 3 s + (i/N) of one request interval.  With a fixed fault time the
fault would land at the same point of the request cycle every run (the load is periodic), and a
`kill` would always cut the in-flight request at the same stage; spreading the phase samples every
stage, the worst one included.
"""

from __future__ import annotations

import argparse

import common
from common import llmops, med, mx, run_check, save, table

CONFIGS = {"llmops": "config.yaml", "litellm defaults": "config.defaults.yaml"}


def switch(config: str, warm: bool = True) -> None:
    p = llmops("--json", "up", "--wait-timeout", "300", *([] if warm else ["--no-warm"]),
               env={"LITELLM_CONFIG": config})
    if p.returncode != 0:
        raise SystemExit(f"could not switch the gateway to {config}: {p.stderr[-500:]}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--modes", default="stop,kill,pause")
    ap.add_argument("--no-baseline", action="store_true")
    ap.add_argument("--name", default="failover", help="output name under docs/bench/")
    ap.add_argument("--fresh", action="store_true", help="down + up before every run")
    ap.add_argument("--no-warm", dest="warm", action="store_false", help="up without the warm-up")
    ap.add_argument("--max-tokens", type=int, default=1, help="tokens per load request")
    ap.add_argument("--rps", type=float, default=10.0)
    ap.add_argument("--project-name", default="llmops", help="compose project to run against")
    ap.add_argument("--loss-pct", type=float, default=5.0, help="packet loss for --modes loss, percent")
    a = ap.parse_args()
    # every llmops call below, `up` included, goes to this project (common.LLMOPS is their argv head)
    common.LLMOPS.extend(["--project-name", a.project_name])
    modes = a.modes.split(",")
    net = any(m in ("partition", "blackhole", "loss") for m in modes)
    data: dict[str, dict[str, list]] = {}
    rows = []
    configs = {"llmops": CONFIGS["llmops"]} if a.no_baseline else CONFIGS
    try:
        for label, cfg in configs.items():
            switch(cfg, a.warm)
            for mode in modes:
                res = []
                for i in range(a.runs):
                    if a.fresh:
                        llmops("down")
                        switch(cfg, a.warm)
                        llmops("verify")     # as scripts/certify does: its gateway /health touches both servers
                    fault_at = 3 + i / a.runs / a.rps
                    loss = ["--loss-pct", f"{a.loss_pct:g}"] if mode == "loss" else []
                    code, r = run_check(["chaos", "failover", "--mode", mode, *loss, "--rps", f"{a.rps:g}",
                                         "--fault-at", f"{fault_at:.4f}", "--outage", "5",
                                         "--max-tokens", str(a.max_tokens), *([] if a.warm else ["--no-warm"])],
                                        "04_failover_test", env={"LITELLM_CONFIG": cfg})
                    m = r["metrics"]
                    first = r["details"]["analysis"]["first_failover_request"] or {}
                    res.append({"exit": code, "fault_at_s": round(fault_at, 4),
                                "first_in_flight": first.get("in_flight_at_fault"), **{k: m.get(k) for k in (
                        "failover_time_s", "failover_penalty_s", "failed_requests", "total_requests",
                        "served_by_secondary", "failback_time_s", "restored")},
                        "p95_during_s": m["latency"]["during"]["p95_s"], "max_during_s": m["latency"]["during"]["max_s"],
                        "p50_during_s": m["latency"]["during"]["p50_s"],
                        "errors_during": m["latency"]["during"]["errors"],
                        "health_divergence_s": m.get("health_divergence_s"), "dropped_packets": m.get("dropped_packets"),
                        "failed_dod": [c["criterion"] for c in r["dod"] if not c["pass"]]})
                cond = (label + (", fresh stack" if a.fresh else "") + ("" if a.warm else ", no warm-up")
                        + f", max_tokens={a.max_tokens}")
                mode_label = f"loss {a.loss_pct:g} %" if mode == "loss" else mode
                data.setdefault(cond, {})[mode] = res
                col = lambda k: [x[k] for x in res]  # noqa: E731
                rows.append([cond, mode_label, len(res), med(col("failover_time_s")), mx(col("failover_time_s")),
                             med(col("failover_penalty_s")), mx(col("failover_penalty_s")),
                             sum(col("failed_requests")), sum(col("total_requests")),
                             med(col("p95_during_s")), mx(col("max_during_s")),
                             med(col("failback_time_s")), mx(col("failback_time_s")),
                             sum(1 for x in res if x["first_in_flight"]), sum(1 for x in res if x["exit"] == 0)]
                            + ([med(col("health_divergence_s")), mx(col("health_divergence_s")),
                                med(col("p50_during_s"))] if net else []))
    finally:
        switch(CONFIGS["llmops"])
    md = table(["router settings", "mode", "runs", "failover median (s)", "failover max (s)", "penalty median (s)",
                "penalty max (s)", "failed requests", "requests", "p95 during outage (s)", "max during outage (s)",
                "failback median (s)",
                "failback max (s)", "first failover request in flight (runs)", "runs exit 0"]
               + (["health divergence median (s)", "health divergence max (s)", "p50 during outage (s)"] if net else []),
               rows)
    save(a.name, data, md)


if __name__ == "__main__":
    main()
