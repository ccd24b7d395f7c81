"""`llmops watch`, the CLI side: check the options, bind the port, pick the source, and on a
terminal draw the live table (Rich lives here, never under llmops.watch).

Order matters for bad input: the address and the targets are checked first (exit 2), then the
port is bound (exit 4, naming who holds it), and only then is Docker asked anything."""

from __future__ import annotations

import datetime as _dt
import os
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from ..errors import UsageError
from ..runner import Say

if TYPE_CHECKING:
    from ..context import Context
    from ..watch.readings import Snapshot

MASTER_KEY_ENV = "LITELLM_MASTER_KEY"   # with --target: the gateway's key, from the environment only


def _mib(b: float | None) -> str:
    return "-" if b is None else f"{b / 2**20:,.0f}"


def table(snap: "Snapshot", where: str) -> Any:
    """The live view of one round (plain text cells: a service's answer may hold brackets)."""
    from rich.table import Table
    from rich.text import Text

    llama = {r.service: dict(r.values) for r in snap.llama}
    gpu = {svc: used for svc, _i, used in snap.gpu.per_service}
    counts = {svc: (n, f) for svc, n, f in snap.health_probes}
    t = Table(title=f"llmops watch: round {snap.cycle}, {snap.scrape_duration_s * 1000:.0f} ms, {where}",
              title_justify="left")
    for col in ("service", "role", "up", "health ms", "failed/probes", "processing", "deferred", "tok/s", "GPU MiB"):
        t.add_column(col, justify="left" if col in ("service", "role", "up") else "right")
    for h in snap.health:
        m = llama.get(h.service, {})
        n, f = counts.get(h.service, (0, 0))
        tps = m.get("llmops_llama_predicted_tokens_per_second")
        t.add_row(Text(h.service), h.role, Text("up", "green") if h.up else Text(f"DOWN {h.reason}"[:60], "red"),
                  "-" if h.latency_s is None else f"{h.latency_s * 1000:.1f}", f"{f}/{n}",
                  f"{m['llmops_llama_requests_processing']:.0f}" if "llmops_llama_requests_processing" in m else "-",
                  f"{m['llmops_llama_requests_deferred']:.0f}" if "llmops_llama_requests_deferred" in m else "-",
                  "-" if tps is None else f"{tps:.1f}", _mib(gpu.get(h.service)))
    g = snap.gateway
    if g is not None:
        where_now = f"on {snap.gateway_backend or '?'}" + (" (SECONDARY)" if snap.on_secondary else "")
        state = f"{g.latency_s * 1000:.0f} ms" if g.ok else f"FAILED {g.reason}"[:80]
        t.caption = (f"gateway probe: {state}; {where_now}; failovers {snap.failovers}, failbacks {snap.failbacks}"
                     + (f"; vector DB points {snap.vectordb.points}" if snap.vectordb and snap.vectordb.points is not None else "")
                     + ("" if snap.gpu.available else "; no GPU"))
    return t


@dataclass(frozen=True)
class WatchOptions:
    listen: str
    interval: float
    once: bool = False
    allow_public_listen: bool = False
    targets: tuple[str, ...] = ()
    alias: str | None = None


def _source(c: "Context | None", o: WatchOptions, gpu_plan: bool) -> Any:
    from ..watch.listen import parse_target
    from ..watch.sources import DockerSource, StaticSource
    from ..watch.targets import plan_from_specs

    if o.targets:
        specs = [parse_target(t) for t in o.targets]
        names = [s.name for s in specs]
        if dup := sorted({n for n in names if names.count(n) > 1}):
            raise UsageError(f"--target: two targets named {', '.join(dup)}")
        if any(s.role == "gateway" for s in specs) and not o.alias:
            raise UsageError("--target with a gateway needs --alias (the model name the probe asks for)")
        return StaticSource(plan_from_specs(specs, o.alias, os.environ.get(MASTER_KEY_ENV)))
    assert c is not None
    c.stack().require_up()
    return DockerSource(c, gpu_plan=gpu_plan)


def log_line(msg: str) -> None:
    """An event without a terminal (a service, a log file): one unwrapped, timestamped line."""
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    print(f"{stamp} llmops watch: {msg}", file=sys.stderr, flush=True)


def run_watch(context: Callable[[], "Context"], say: Say, o: WatchOptions) -> int:
    """Check, bind, watch; the exit code (0 after --once, or after SIGINT/SIGTERM)."""
    from ..watch.listen import bind, parse_listen, parse_target
    from ..watch.loop import handler_for
    from ..watch.metrics import exposition

    lst = None if o.once else parse_listen(o.listen, o.allow_public_listen)
    for t in o.targets:
        parse_target(t)          # exit 2 before the port is bound
    holder: list[Any] = []
    server = bind(lst, handler_for(lambda: exposition(holder[0].latest) if holder and holder[0].latest else b"")) \
        if lst is not None else None
    try:
        return _watch(None if o.targets else context, say, holder, server, o)
    finally:
        if server is not None:
            server.server_close()


def _watch(context: "Callable[[], Context] | None", say: Say, holder: list[Any], server: Any, o: WatchOptions) -> int:
    from ..watch.gpumem import GpuSampler
    from ..watch.listen import parse_listen
    from ..watch.loop import Watcher, serve
    from ..watch.metrics import exposition

    gpu = GpuSampler()
    source = _source(context() if context else None, o, gpu.available)
    for note in getattr(source, "notes", []):
        say(note, "warn")
    tty = sys.stderr.isatty()
    watcher = Watcher(source, o.interval, gpu, say=say if tty or o.once else (lambda m, _l="info": log_line(m)))
    holder.append(watcher)
    if o.once:
        serve(watcher, None, lambda _s, _e: None, rounds=1)
        sys.stdout.write(exposition(watcher.latest).decode())  # type: ignore[arg-type]
        return 0
    where = f"http://{parse_listen(o.listen, True).shown(server.server_address[1])}/metrics"
    intro = f"serving {where}, a round every {o.interval:g} s" + ("" if gpu.available else f"; no GPU ({gpu.reason})")
    if not tty:
        log_line(intro)
        serve(watcher, server, lambda _s, events: [log_line(e) for e in events])
        return 0
    from rich.console import Console
    from rich.live import Live

    say(f"llmops watch: {intro}; Ctrl-C stops")
    with Live(console=Console(stderr=True), auto_refresh=False, transient=False) as live:
        def on_round(snap: "Snapshot", events: list[str]) -> None:
            for e in events:
                live.console.print(e, markup=False, highlight=False)
            live.update(table(snap, where), refresh=True)

        serve(watcher, server, on_round)
    return 0
