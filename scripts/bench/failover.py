"""Benchmark: the failover experiment N times per mode, with our router settings and with LiteLLM's
default router settings (the peer baseline, compose/litellm/config.defaults.yaml).

Usage: .venv/bin/python scripts/bench/failover.py [--runs N] [--modes stop,kill,pause] [--no-baseline]
                                                  [--only-baseline] [--fresh] [--no-warm] [--max-tokens N]
                                                  [--project-name NAME --port-base N] [--loss-pct P] [--stream]
                                                  [--busy]
--busy runs the whole benchmark under load (scripts/bench/busy.py): two CPU-bound processes and a
loop creating and removing a small container, as on a busy GPU box; they stop by themselves.
--stream runs `chaos failover --stream` (streamed completions, 32 tokens at 1/s unless given) and
tabulates the streaming figures: cut streams, tokens lost, failed to start, TTFT penalty, stall.
Modes: stop, kill, pause (the container) and partition, blackhole, loss (the network between the
gateway and the primary; `loss` drops --loss-pct % of the gateway's packets, default 5).
It recreates the gateway to switch configs and puts ours back at the end.  --fresh takes the stack
down, up and verify before every run (certify's situation: the first failover after `up`); --no-warm
skips the warm-ups (`up`'s and the failover pre-flight's), to measure what a cold standby costs.
--project-name/--port-base (required; default $LLMOPS_E2E_PROJECT/$LLMOPS_E2E_PORT_BASE) name the
stack it breaks and reconfigures: its compose project and host ports base+0..5 as the e2e suite
assigns them; never the operator's `llmops` stack.

Run i of N injects its fault at 3 s + (i/N) of one request interval.  With a fixed fault time the
fault would land at the same point of the request cycle every run (the load is periodic), and a
`kill` would always cut the in-flight request at the same stage; spreading the phase samples every
stage, the worst one included.
"""

from __future__ import annotations

import argparse
import contextlib
import os
from typing import Any

import common
from busy import busy
from common import med, mx, save, table

CONFIGS = {"llmops": "config.yaml", "litellm defaults": "config.defaults.yaml",
           # the shipped settings before the secondary's cooldown_time 0 (--config only)
           "llmops, secondary can cool down": "config.secondary-cooldown.yaml"}


# Global options for every llmops call (set from --project-name).
PROJECT: list[str] = []


def llmops(*args: str, **kw: Any) -> Any:
    return common.llmops(*PROJECT, *args, **kw)


def run_check(args: list[str], stem: str, env: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    return common.run_check([*PROJECT, *args], stem, env=env)


def switch(config: str, warm: bool = True) -> None:
    p = llmops("--json", "up", "--wait-timeout", "300", *([] if warm else ["--no-warm"]),
               env={"LITELLM_CONFIG": config})
    if p.returncode != 0:
        raise SystemExit(f"could not switch the gateway to {config}: {p.stderr[-500:]}")


def write(name: str, data: dict[str, dict[str, list]], rows: list[list[Any]], net: bool) -> None:
    md = table(["router settings", "mode", "runs", "failover median (s)", "failover max (s)",
                "fault_call_s median (s)", "fault_call_s max (s)", "penalty median (s)",
                "penalty max (s)", "failed requests", "requests", "p95 during outage (s)", "max during outage (s)",
                "failback median (s)",
                "failback max (s)", "runs with an in-flight request served by the secondary",
                "runs with the secondary serving before the fault", "runs exit 0"]
               + (["health divergence median (s)", "health divergence max (s)", "p50 during outage (s)"] if net else []),
               rows)
    save(name, data, md)


def chosen_configs(a: argparse.Namespace) -> dict[str, str]:
    """Ours, LiteLLM's defaults, or both (--no-baseline, --only-baseline); or one by file (--config)."""
    if a.config:
        return {next((k for k, v in CONFIGS.items() if v == a.config), a.config): a.config}
    if a.no_baseline:
        return {"llmops": CONFIGS["llmops"]}
    return ({"litellm defaults": CONFIGS["litellm defaults"]} if a.only_baseline else
            {k: CONFIGS[k] for k in ("llmops", "litellm defaults")})


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--modes", default="stop,kill,pause")
    ap.add_argument("--no-baseline", action="store_true")
    ap.add_argument("--only-baseline", action="store_true", help="LiteLLM's defaults only")
    ap.add_argument("--project-name", default=os.environ.get("LLMOPS_E2E_PROJECT"),
                    help="compose project of the stack to break and reconfigure (never `llmops`)")
    ap.add_argument("--port-base", type=int, default=int(os.environ.get("LLMOPS_E2E_PORT_BASE") or 0) or None,
                    help="its host ports: base+0..5 as the e2e suite assigns them")
    ap.add_argument("--name", default="failover", help="output name under docs/bench/")
    ap.add_argument("--fresh", action="store_true", help="down + up before every run")
    ap.add_argument("--no-warm", dest="warm", action="store_false", help="up without the warm-up")
    ap.add_argument("--max-tokens", type=int, default=None, help="tokens per load request (1; 32 with --stream)")
    ap.add_argument("--rps", type=float, default=None, help="request rate (10; 1 with --stream)")
    ap.add_argument("--stream", action="store_true", help="streamed completions (chaos failover --stream)")
    ap.add_argument("--loss-pct", type=float, default=5.0, help="packet loss for --modes loss, percent")
    ap.add_argument("--busy", action="store_true", help="2 CPU loops + container churn for the whole run")
    ap.add_argument("--config", default=None, help="one gateway config from compose/litellm/ (e.g. "
                    "config.secondary-cooldown.yaml) instead of ours and LiteLLM's defaults")
    a = ap.parse_args()
    # It recreates the gateway with other router settings and breaks servers: never the operator's
    # own stack (as scripts/bench/qdrant.py).
    if not a.project_name or a.project_name == "llmops" or not a.port_base:
        ap.error("name the stack to break: --project-name (not `llmops`) and --port-base")
    PROJECT[:] = ["--project-name", a.project_name]
    if a.port_base:
        for i, var in enumerate(("GATEWAY_PORT", "CHAT_PORT", "RAG_PORT", "EMBEDDING_PORT", "CODE_PORT", "QDRANT_PORT")):
            os.environ[var] = str(a.port_base + i)
    a.rps = a.rps or (1.0 if a.stream else 10.0)
    a.max_tokens = a.max_tokens or (32 if a.stream else 1)
    with busy() if a.busy else contextlib.nullcontext():
        if a.stream:
            stream_bench(a)
        else:
            plain_bench(a)


def plain_bench(a: argparse.Namespace) -> None:
    modes = a.modes.split(",")
    net = any(m in ("partition", "blackhole", "loss") for m in modes)
    data: dict[str, dict[str, list]] = {}
    rows = []
    configs = chosen_configs(a)
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
                    an, sec = r["details"]["analysis"], r["details"]["secondary"]
                    failed_lines = [c["criterion"] for c in r["dod"] if not c["pass"]]
                    res.append({"exit": code, "fault_at_s": round(fault_at, 4),
                                "fault_call_s": m.get("fault_call_s"), "dead_from": r["details"]["marks"].get("dead_from"),
                                "availability_pct": m.get("availability_pct"),
                                "failed_request_events": r.get("failed_request_events"),
                                "in_flight_on_secondary": an["in_flight_at_fault"]["served"].get(sec, 0),
                                "secondary_before_fault": an["served_before_fault"].get(sec, 0),
                                "failed_lines": failed_lines, **{k: m.get(k) for k in (
                        "failover_time_s", "failover_penalty_s", "failed_requests", "total_requests",
                        "served_by_secondary", "failback_time_s", "restored")},
                        "p95_during_s": m["latency"]["during"]["p95_s"], "max_during_s": m["latency"]["during"]["max_s"],
                        "p50_during_s": m["latency"]["during"]["p50_s"],
                        "errors_during": m["latency"]["during"]["errors"],
                        "health_divergence_s": m.get("health_divergence_s"), "dropped_packets": m.get("dropped_packets")})
                cond = (label + (", fresh stack" if a.fresh else "") + ("" if a.warm else ", no warm-up")
                        + f", max_tokens={a.max_tokens}" + (", busy" if a.busy else ", quiet"))
                mode_label = f"loss {a.loss_pct:g} %" if mode == "loss" else mode
                data.setdefault(cond, {})[mode] = res
                col = lambda k: [x[k] for x in res]  # noqa: E731
                rows.append([cond, mode_label, len(res), med(col("failover_time_s")), mx(col("failover_time_s")),
                             med(col("fault_call_s")), mx(col("fault_call_s")),
                             med(col("failover_penalty_s")), mx(col("failover_penalty_s")),
                             sum(col("failed_requests")), sum(col("total_requests")),
                             med(col("p95_during_s")), mx(col("max_during_s")),
                             med(col("failback_time_s")), mx(col("failback_time_s")),
                             sum(1 for x in res if x["in_flight_on_secondary"]),
                             sum(1 for x in res if x["secondary_before_fault"]),
                             sum(1 for x in res if x["exit"] == 0)]
                            + ([med(col("health_divergence_s")), mx(col("health_divergence_s")),
                                med(col("p50_during_s"))] if net else []))
                write(a.name, data, rows, net)      # after every mode, so a cut-short run keeps what it measured
    finally:
        switch(CONFIGS["llmops"])



def worst(res: list[dict[str, Any]], key: str) -> str:
    """The worst `key` over the runs, per backend, of whole streams served on the first attempt:
    what each deployment's stream_timeout must stay above."""
    per: dict[str, float] = {}
    for x in res:
        for b, h in (x.get("healthy") or {}).items():
            if h.get(key) is not None:
                per[b] = max(per.get(b, 0.0), h[key])
    return " / ".join(f"{b.removeprefix('inference-')} {v:.3f}" for b, v in sorted(per.items())) or "n/a"


def stream_bench(a: argparse.Namespace) -> None:
    """`chaos failover --stream` N times per mode and config; median and max of each figure."""
    modes = a.modes.split(",")
    configs = chosen_configs(a)
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
                    code, r = run_check(["chaos", "failover", "--stream", "--mode", mode,
                                         "--rps", f"{a.rps:g}", "--max-tokens", str(a.max_tokens),
                                         "--fault-at", f"{fault_at:.4f}", "--outage", "5"],
                                        "04_failover_test", env={"LITELLM_CONFIG": cfg})
                    m, s = r["metrics"], r["details"]["stream_analysis"]
                    res.append({"exit": code, "fault_at_s": round(fault_at, 4), **{k: m.get(k) for k in keys},
                                "failed_to_start_after_fault": s["failed_to_start_after_fault"],
                                "cut_not_in_flight": s["cut_not_in_flight"],
                                "failed_not_in_flight": s["failed_not_in_flight"],
                                "ttft_p95_before_s": s["ttft"]["before"]["ttft_p95_s"],
                                "ttft_p95_during_s": s["ttft"]["during"]["ttft_p95_s"],
                                "max_ttft_during_outage_s": s["max_ttft_during_outage_s"],
                                "stream_timeout_s": r["details"]["stream_timeout_s"],
                                "healthy": s.get("healthy"),
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
                             med(col("ttft_p95_before_s")), worst(res, "ttft_max_s"), worst(res, "gap_max_s"),
                             sum(1 for x in res if x["exit"] == 0)])
    finally:
        switch(CONFIGS["llmops"])
    md = table(["router settings", "mode", "runs", "cut streams", "in flight on primary at fault", "tokens lost",
                "failed to start after fault", "failed, not in flight", "failed requests", "requests",
                "TTFT penalty median (s)", "TTFT penalty max (s)", "max TTFT in outage median (s)",
                "max TTFT in outage max (s)", "stall detect median (s)", "stall detect max (s)",
                "steady TTFT p95 median (s)", "healthy TTFT max (s)", "healthy chunk gap max (s)",
                "runs exit 0"], rows)
    save(a.name if a.name != "failover" else "failover-stream", data, md)


if __name__ == "__main__":
    main()
