"""Benchmark: the failover experiment N times per mode, with our router settings and with LiteLLM's
default router settings (the peer baseline, compose/litellm/config.defaults.yaml).

Usage: .venv/bin/python scripts/bench/failover.py [--runs N] [--modes stop,kill,pause] [--no-baseline]
                                                  [--fresh] [--no-warm] [--max-tokens N] [--stream]
                                                  [--project-name P --port-base N]
--stream runs `chaos failover --stream` (streamed completions, 32 tokens at 1/s unless given) and
tabulates the streaming figures: cut streams, tokens lost, failed to start, TTFT penalty, stall.
--project-name/--port-base run against another compose project on its own host ports (base+0..5:
gateway, chat, rag, embedding, code, qdrant), e.g. a helper's or CI's, never touching `llmops`.
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

from common import llmops, med, mx, run_check, save, table

CONFIGS = {"llmops": "config.yaml", "litellm defaults": "config.defaults.yaml"}


PORT_VARS = ("GATEWAY_PORT", "CHAT_PORT", "RAG_PORT", "EMBEDDING_PORT", "CODE_PORT", "QDRANT_PORT")
TARGET: list[str] = []           # global options naming the compose project
PORTS: dict[str, str] = {}


def switch(config: str, warm: bool = True) -> None:
    p = llmops(*TARGET, "--json", "up", "--wait-timeout", "300", *([] if warm else ["--no-warm"]),
               env={"LITELLM_CONFIG": config, **PORTS})
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
    ap.add_argument("--max-tokens", type=int, default=None, help="tokens per load request (1; 32 with --stream)")
    ap.add_argument("--rps", type=float, default=None, help="request rate (10; 1 with --stream)")
    ap.add_argument("--stream", action="store_true", help="streamed completions (chaos failover --stream)")
    ap.add_argument("--project-name", default=None, help="compose project (default: llmops's own default)")
    ap.add_argument("--port-base", type=int, default=None, help="host ports base+0..5 for that project")
    a = ap.parse_args()
    if a.project_name:
        TARGET.extend(["--project-name", a.project_name])
    if a.port_base:
        PORTS.update({v: str(a.port_base + i) for i, v in enumerate(PORT_VARS)})
    a.rps = a.rps or (1.0 if a.stream else 10.0)
    a.max_tokens = a.max_tokens or (32 if a.stream else 1)
    if a.stream:
        stream_bench(a)
        return
    modes = a.modes.split(",")
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
                        llmops(*TARGET, "down", env=PORTS)
                        switch(cfg, a.warm)
                        llmops(*TARGET, "verify", env=PORTS)     # as scripts/certify does: its gateway /health touches both servers
                    fault_at = 3 + i / a.runs / a.rps
                    code, r = run_check([*TARGET, "chaos", "failover", "--mode", mode, "--rps", f"{a.rps:g}",
                                         "--fault-at", f"{fault_at:.4f}", "--outage", "5",
                                         "--max-tokens", str(a.max_tokens), *([] if a.warm else ["--no-warm"])],
                                        "04_failover_test", env={"LITELLM_CONFIG": cfg, **PORTS})
                    m = r["metrics"]
                    first = r["details"]["analysis"]["first_failover_request"] or {}
                    res.append({"exit": code, "fault_at_s": round(fault_at, 4),
                                "first_in_flight": first.get("in_flight_at_fault"), **{k: m.get(k) for k in (
                        "failover_time_s", "failover_penalty_s", "failed_requests", "total_requests",
                        "served_by_secondary", "failback_time_s", "restored")},
                        "p95_during_s": m["latency"]["during"]["p95_s"], "max_during_s": m["latency"]["during"]["max_s"]})
                cond = (label + (", fresh stack" if a.fresh else "") + ("" if a.warm else ", no warm-up")
                        + f", max_tokens={a.max_tokens}")
                data.setdefault(cond, {})[mode] = res
                col = lambda k: [x[k] for x in res]  # noqa: E731
                rows.append([cond, mode, len(res), med(col("failover_time_s")), mx(col("failover_time_s")),
                             med(col("failover_penalty_s")), mx(col("failover_penalty_s")),
                             sum(col("failed_requests")), sum(col("total_requests")),
                             med(col("p95_during_s")), mx(col("max_during_s")),
                             med(col("failback_time_s")), mx(col("failback_time_s")),
                             sum(1 for x in res if x["first_in_flight"]), sum(1 for x in res if x["exit"] == 0)])
    finally:
        switch(CONFIGS["llmops"])
    md = table(["router settings", "mode", "runs", "failover median (s)", "failover max (s)", "penalty median (s)",
                "penalty max (s)", "failed requests", "requests", "p95 during outage (s)", "max during outage (s)",
                "failback median (s)",
                "failback max (s)", "first failover request in flight (runs)", "runs exit 0"], rows)
    save(a.name, data, md)


def stream_bench(a: argparse.Namespace) -> None:
    """`chaos failover --stream` N times per mode and config; median and max of each figure."""
    modes = a.modes.split(",")
    configs = {"llmops": CONFIGS["llmops"]} if a.no_baseline else CONFIGS
    data: dict[str, dict[str, list]] = {}
    rows = []
    keys = ("cut_streams", "in_flight_on_primary", "tokens_lost", "failed_to_start", "failed_requests",
            "total_requests", "ttft_penalty_s", "stall_detect_s", "failover_time_s", "failback_time_s")
    try:
        for label, cfg in configs.items():
            switch(cfg, a.warm)
            for mode in modes:
                res = []
                for i in range(a.runs):
                    fault_at = 3 + i / a.runs / a.rps      # spread the fault over one request interval
                    code, r = run_check([*TARGET, "chaos", "failover", "--stream", "--mode", mode,
                                         "--rps", f"{a.rps:g}", "--max-tokens", str(a.max_tokens),
                                         "--fault-at", f"{fault_at:.4f}", "--outage", "5"],
                                        "04_failover_test", env={"LITELLM_CONFIG": cfg, **PORTS})
                    m, s = r["metrics"], r["details"]["stream_analysis"]
                    res.append({"exit": code, "fault_at_s": round(fault_at, 4), **{k: m.get(k) for k in keys},
                                "failed_to_start_after_fault": s["failed_to_start_after_fault"],
                                "cut_not_in_flight": s["cut_not_in_flight"],
                                "failed_not_in_flight": s["failed_not_in_flight"],
                                "ttft_p95_before_s": s["ttft"]["before"]["ttft_p95_s"],
                                "ttft_p95_during_s": s["ttft"]["during"]["ttft_p95_s"],
                                "max_ttft_during_outage_s": s["max_ttft_during_outage_s"],
                                "stream_timeout_s": r["details"]["stream_timeout_s"],
                                "dod_failed": [d["criterion"] for d in r["dod"] if not d["pass"]]})
                cond = f"{label}, max_tokens={a.max_tokens}, {a.rps:g}/s"
                data.setdefault(cond, {})[mode] = res
                col = lambda k: [x[k] for x in res]  # noqa: E731
                rows.append([cond, mode, len(res), sum(col("cut_streams")), sum(col("in_flight_on_primary")),
                             sum(col("tokens_lost")), sum(col("failed_to_start_after_fault")),
                             sum(col("failed_not_in_flight")), sum(col("failed_requests")), sum(col("total_requests")),
                             med(col("ttft_penalty_s")), mx(col("ttft_penalty_s")),
                             med(col("max_ttft_during_outage_s")), mx(col("max_ttft_during_outage_s")),
                             med(col("stall_detect_s")), mx(col("stall_detect_s")),
                             med(col("ttft_p95_before_s")), sum(1 for x in res if x["exit"] == 0)])
    finally:
        switch(CONFIGS["llmops"])
    md = table(["router settings", "mode", "runs", "cut streams", "in flight on primary at fault", "tokens lost",
                "failed to start after fault", "failed, not in flight", "failed requests", "requests",
                "TTFT penalty median (s)", "TTFT penalty max (s)", "max TTFT in outage median (s)",
                "max TTFT in outage max (s)", "stall detect median (s)", "stall detect max (s)",
                "steady TTFT p95 median (s)", "runs exit 0"], rows)
    save(a.name if a.name != "failover" else "failover-stream", data, md)


if __name__ == "__main__":
    main()
