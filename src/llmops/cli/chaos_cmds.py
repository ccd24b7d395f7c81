"""`llmops chaos failover|qdrant|restore`: real faults, always undone."""

from __future__ import annotations

import sys
from typing import Optional

import typer

from ..validate import in_range
from .app import chaos_app, ctx, done, run_checks, say


@chaos_app.command("failover")
def chaos_failover(
    target: Optional[str] = typer.Option(None, "--target", help="The model server to break (default: the primary)."),
    mode: str = typer.Option("stop", "--mode", help="stop | kill | pause | partition | blackhole | loss "
                             "(network faults between the gateway and the target; blackhole and loss need root, "
                             "nsenter and iptables)"),
    loss_pct: Optional[float] = typer.Option(None, "--loss-pct", help="--mode loss: percent of the gateway's "
                                             "packets to the target dropped at random (>0-100, default 5)."),
    rps: Optional[float] = typer.Option(None, "--rps", help="Constant request rate through the gateway "
                                        "(0.5-50; default 10, with --stream 1 and at most 10)."),
    duration: float = typer.Option(60.0, "--duration", help="Upper bound on the whole load phase, seconds."),
    fault_at: float = typer.Option(3.0, "--fault-at", help="Seconds of steady state before the fault."),
    outage: float = typer.Option(5.0, "--outage", help="Seconds the fault lasts before the restore."),
    no_restore: bool = typer.Option(False, "--no-restore", help="Leave the fault in place (exit 5)."),
    max_tokens: Optional[int] = typer.Option(None, "--max-tokens", help="Tokens per load request (1-256; "
                                             "default 1, with --stream 32). A request in "
                                   "flight when the primary dies loses its work there, so larger requests "
                                   "raise the kill-mode penalty by up to one service time."),
    no_warm: bool = typer.Option(False, "--no-warm", help="Skip the pre-flight request to each deployment: "
                                 "the standby then starts with whatever its cache holds."),
    stream: bool = typer.Option(False, "--stream", help="Streamed completions (SSE): count streams cut "
                                "mid-answer as failed whatever their HTTP status; time to first token."),
) -> None:
    """Stop/kill/pause the primary under load; time the gateway's failover and failback."""
    from ..chaos.failover import FailoverOptions, run_failover
    from ..chaos.streamload import stream_defaults
    from ..runner import Check, Phase

    rps, max_tokens = stream_defaults(stream, rps, max_tokens)
    o = FailoverOptions(target, mode, rps, duration, fault_at, outage, not no_restore, max_tokens=max_tokens,
                        warm=not no_warm, loss_pct=loss_pct, stream=stream)
    done(run_checks(Phase("failover", [Check("failover", lambda run: run_failover(ctx(), run, o))])))


@chaos_app.command("qdrant")
def chaos_qdrant(
    mode: str = typer.Option("stop", "--mode", help="stop | kill | pause"),
    outage: float = typer.Option(6.0, "--outage", help="Seconds Qdrant stays away."),
    no_restore: bool = typer.Option(False, "--no-restore", help="Leave Qdrant down (exit 5)."),
    data_safety: Optional[bool] = typer.Option(None, "--data-safety/--no-data-safety",
                                               help="Also SIGKILL Qdrant after acknowledged writes to a collection of "
                                                    "its own (llmops_durability) and count them.  Default: on for "
                                                    "llmops' own stack; on a stack of yours, asked (off without a terminal)."),
    points: int = typer.Option(200, "--points", help="Points written for the data-safety check."),
) -> None:
    """Take Qdrant away; measure rag's degraded health, 503s, reconnect and data safety."""
    from ..chaos.qdrant import QdrantOptions, run_qdrant
    from ..runner import Check, Phase

    o = QdrantOptions(mode, outage, not no_restore, data_safety=decide_data_safety(data_safety),
                      safety_points=points)
    done(run_checks(Phase("qdrant", [Check("qdrant", lambda run: run_qdrant(ctx(), run, o))])))


def decide_data_safety(flag: Optional[bool]) -> bool:
    """The data-safety step SIGKILLs the vector DB and writes a collection there: on llmops' own
    stack by default; on a user's only when they say so (the flag, or yes at a terminal)."""
    from ..chaos.qdrant import DURABILITY_COLLECTION

    c = ctx()
    if flag is not None:
        return flag
    if c.compose.demo:
        return True
    vdb = c.stack().role("vectordb")
    name = vdb.name if vdb else "the vector DB"
    what = (f"data safety SIGKILLs {name} in stack `{c.project}` after writing points to a collection "
            f"{DURABILITY_COLLECTION!r} there (deleted after)")
    if sys.stdin.isatty():
        return bool(typer.confirm(f"{what}: run it?", default=False))
    say(f"{what}: not run without --data-safety (no terminal to ask)", "warn")
    return False


@chaos_app.command("restore")
def chaos_restore(timeout: float = typer.Option(120.0, "--timeout", callback=in_range(1, 3600),
                                                help="Seconds to wait for health (1-3600).")) -> None:
    """Undo every fault recorded in the restore ledger (after a crash or SIGKILL); safe to rerun."""
    from ..chaos.ledger import Ledger
    from ..chaos.restore import ledger_path, replay

    c = ctx()
    done = replay(c.client, Ledger(ledger_path(c.project_dir)), c.project, c.declared(), timeout, say=say)
    say(f"stack healthy; restored: {', '.join(done) if done else 'nothing needed restoring'}")
