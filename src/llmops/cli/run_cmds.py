"""`llmops report|certify`: the whole procedure in one run folder, and its report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer

from .app import app, ctx, opts, say, show
from .ui import console


@app.command()
def report(run_dir: Optional[Path] = typer.Argument(None, help="Run folder (default: evidence/latest).")) -> None:
    """Render summary.md/.html/.json, junit.xml and charts from a run's JSON files only."""
    from ..report import render_report

    # A run folder is all a report needs: no checkout, no compose files, no engine.  Only the
    # default (the evidence folder's `latest`) needs to know where the evidence folder is.
    o = opts()
    path = run_dir if run_dir is not None else Path(o.evidence_dir or "evidence") / "latest"
    res = render_report(path)
    if o.json:
        print(json.dumps({"exit_code": res.exit_code, "status": res.status,
                          "files": [str(p) for p in res.paths]}))
    else:
        for p in res.paths:
            say(f"wrote {p}")
        say(f"overall: {res.status} (exit {res.exit_code}) - {res.conclusion}")
    raise typer.Exit(res.exit_code)


@app.command()
def certify(
    skip: Optional[list[str]] = typer.Option(None, "--skip", help="Phases to skip: verify, failover, qdrant, gpu, report."),
    failover_mode: str = typer.Option("stop", "--failover-mode", help="stop | kill | pause | partition | blackhole | loss (loss at 5 %)"),
    qdrant_mode: str = typer.Option("stop", "--qdrant-mode", help="stop | kill | pause"),
    data_safety: Optional[bool] = typer.Option(None, "--data-safety/--no-data-safety",
                                               help="The qdrant phase's SIGKILL durability step (as chaos qdrant)."),
    stream: bool = typer.Option(False, "--stream", help="The failover phase runs the streaming failover "
                                "(chaos failover --stream with its defaults) instead of the one-token load."),
) -> None:
    """verify, chaos failover, chaos qdrant, gpu-report and report, in one run folder."""
    from rich.live import Live

    from ..certify import PHASES, check_skip, run_certify
    from ..chaos.failover import FailoverOptions
    from ..chaos.qdrant import QdrantOptions
    from ..chaos.streamload import stream_defaults
    from ..runner import Runner
    from .chaos_cmds import decide_data_safety
    from .ui import certify_board

    skip = skip or []
    check_skip(skip)
    rps, max_tokens = stream_defaults(stream, None, None)
    fo = FailoverOptions(mode=failover_mode, rps=rps, max_tokens=max_tokens, stream=stream)
    qo = QdrantOptions(mode=qdrant_mode, data_safety="qdrant" not in skip and decide_data_safety(data_safety))
    fo.validate()   # a bad option is refused now, not when its phase comes round
    qo.validate()
    c = ctx()
    c.client  # noqa: B018 - exit 4 now if there is no engine
    states: dict[str, str] = {p: ("skipped" if p in skip else "pending") for p in PHASES}
    live: list[Live] = []

    def on_phase(name: str, st: str) -> None:
        states[name] = st
        if live:
            live[0].update(board())

    runner = Runner(c, show=show, say=say, on_phase=on_phase, contain=True)
    run_path = runner.path   # the run folder, named on the board from the start

    def board() -> Any:
        return certify_board(f"llmops certify -> {run_path}", states)

    with Live(board(), console=console(stderr=True), refresh_per_second=4) as board_live:
        live.append(board_live)
        code, outcomes = run_certify(runner, skip, fo, qo)
    for o in outcomes:
        say(f"{o.phase:9} exit {o.code}  {o.seconds:6.1f} s" + (f"  {o.error}" if o.error else ""))
    say(f"certify: exit {code}; summary: {run_path / 'summary.md'}")
    raise typer.Exit(code)
