"""Benchmark: is the last deployment standing ever taken out of service for being slow?

The primary is stopped, so the secondary is the only deployment left; then the secondary is
paused for longer than its per-attempt timeout (2 s), which is what an overloaded secondary looks
like to the gateway: an attempt that times out.  With `allowed_fails: 0` and a cooldown on the
secondary, LiteLLM then cools the last deployment down and answers every request with HTTP 429
("No deployments available ... in cooldown") for `cooldown_time` after the secondary is back.
With the shipped `model_info.cooldown_time: 0` on the secondary, requests succeed as soon as it
answers again.  Per config and run: the requests sent once the secondary was unpaused that got
429, or failed at all, and when the first one succeeded.

  .venv/bin/python scripts/bench/last_standing.py --project-name llmops-e2e-stack --port-base 28000 \
      [--runs N] [--configs config.yaml,config.secondary-cooldown.yaml] [--name last-standing]

It breaks and reconfigures one named compose project (never the operator's `llmops`), restores
what it broke in `finally`, and puts the shipped gateway config back at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

import common
from common import med, mx, save, table

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

PORT_VARS = ("GATEWAY_PORT", "CHAT_PORT", "RAG_PORT", "EMBEDDING_PORT", "CODE_PORT", "QDRANT_PORT")
PAUSE_S = 2.5          # longer than the secondary's 2 s timeout: one attempt times out
AFTER_S = 7.0          # longer than the 5 s cooldown: a cooled-down secondary comes back inside it


def one_run(ctx: Any, key: str) -> dict[str, Any]:
    from llmops.chaos.loadgen import LoadGenerator
    from llmops.stack import Role

    stack = ctx.stack(refresh=True)
    primary, secondary, gw = stack.require(Role.PRIMARY), stack.require(Role.SECONDARY), stack.gateway
    p = ctx.client.containers.get(primary.container_id)
    s = ctx.client.containers.get(secondary.container_id)
    lg = LoadGenerator(gw.url, key, stack.alias or "", 10.0, 30.0, max_tokens=1)
    lg.hosts = stack.hosts   # which compose service a reply's api_base names
    loop_done = threading.Event()
    result: dict[str, Any] = {}

    def load() -> None:
        asyncio.run(lg.run())
        loop_done.set()

    th = threading.Thread(target=load, daemon=True)
    try:
        th.start()
        time.sleep(2.0)
        p.stop(timeout=1)
        time.sleep(1.5)                       # the secondary alone serves
        s.pause()
        time.sleep(PAUSE_S)
        s.unpause()
        t_back = time.monotonic()
        time.sleep(AFTER_S)
        lg.stop()
        th.join(30)
        after = [r for r in lg.requests if r.t_send >= t_back]
        ok = sorted((r for r in after if r.ok), key=lambda r: r.t_done)
        result = {"sent_after_unpause": len(after),
                  "http_429_after_unpause": sum(1 for r in after if r.status == 429),
                  "failed_after_unpause": sum(1 for r in after if not r.ok),
                  "first_ok_after_unpause_s": round(ok[0].t_done - t_back, 3) if ok else None,
                  "failed_total": sum(1 for r in lg.requests if not r.ok), "total": len(lg.requests)}
    finally:
        lg.stop()
        s.reload()
        if s.attrs["State"].get("Paused"):
            s.unpause()
        p.start()
    return result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--configs", default="config.yaml,config.secondary-cooldown.yaml")
    ap.add_argument("--project-name", default=os.environ.get("LLMOPS_E2E_PROJECT"))
    ap.add_argument("--port-base", type=int, default=int(os.environ.get("LLMOPS_E2E_PORT_BASE") or 0) or None)
    ap.add_argument("--name", default="last-standing")
    a = ap.parse_args()
    if not a.project_name or a.project_name == "llmops" or not a.port_base:
        ap.error("name the stack to break: --project-name (not `llmops`) and --port-base")
    for i, var in enumerate(PORT_VARS):
        os.environ[var] = str(a.port_base + i)
    from llmops.compose import read_env_file
    from llmops.context import Context

    root = common.ROOT
    key = read_env_file(root / "compose" / ".env")["LITELLM_MASTER_KEY"]
    proj = ["--project-name", a.project_name]
    data: dict[str, list[dict[str, Any]]] = {}
    rows = []
    try:
        for cfg in a.configs.split(","):
            up = common.llmops(*proj, "--json", "up", "--wait-timeout", "300", env={"LITELLM_CONFIG": cfg})
            if up.returncode != 0:
                raise SystemExit(f"could not switch the gateway to {cfg}: {up.stderr[-500:]}")
            res = []
            for _ in range(a.runs):
                ctx = Context(project_dir=root, profile_opt="cpu", project=a.project_name)
                res.append(one_run(ctx, key))
                restore = common.llmops(*proj, "chaos", "restore", "--timeout", "180", env={"LITELLM_CONFIG": cfg})
                if restore.returncode != 0:
                    raise SystemExit(f"restore failed: {restore.stderr[-500:]}")
                time.sleep(6.0)               # the primary's own cooldown ends before the next run
            data[cfg] = res
            col = lambda k: [x[k] for x in res]  # noqa: E731
            rows.append([cfg, len(res), sum(col("http_429_after_unpause")), sum(col("failed_after_unpause")),
                         sum(col("sent_after_unpause")), med(col("first_ok_after_unpause_s")),
                         mx(col("first_ok_after_unpause_s")), sum(col("failed_total")), sum(col("total"))])
    finally:
        common.llmops(*proj, "--json", "up", "--wait-timeout", "300", env={"LITELLM_CONFIG": "config.yaml"})
    save(a.name, data, table(["gateway config", "runs", "HTTP 429 after the secondary is back",
                              "failed after it is back", "sent after it is back", "first 2xx after it is back, median (s)",
                              "first 2xx after it is back, max (s)", "failed in the whole run", "requests"], rows))


if __name__ == "__main__":
    main()
