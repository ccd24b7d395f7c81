"""A chart of a streaming failover run, drawn from its `04_failover_test.json` alone.

Top: every stream as a bar from sending to its end, coloured by the server that answered, cut
streams in red with a cross where they broke, a dot at the first token.  Bottom: time to first
token per stream against the time it was sent.  Fault, restore and primary-healthy are marked.
The report draws it as `chart_failover.png` when the run's failover was streamed.
"""

from __future__ import annotations

from typing import Any


def stream_failover_figure(doc: dict[str, Any]) -> Any:
    """A matplotlib Figure; raises ValueError when the document is not a streaming failover."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    d = doc.get("details") or {}
    if not d.get("stream") or not isinstance(d.get("streams"), list):
        raise ValueError("not a streaming failover result (details.stream/details.streams missing)")
    streams = sorted(d["streams"], key=lambda s: s["sent_at_s"])
    primary, secondary = d.get("target"), d.get("secondary")
    colour = {primary: "tab:blue", secondary: "tab:green"}
    # A Figure on its own Agg canvas, no pyplot: no global backend state, as the report's charts.
    fig = Figure(figsize=(10, 6))
    FigureCanvasAgg(fig)
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 2]})
    for i, s in enumerate(streams):
        t0, t1 = s["sent_at_s"], s["sent_at_s"] + (s.get("end_s") or 0.0)
        c = "tab:red" if s.get("cut") else colour.get(s.get("backend"), "tab:gray")
        top.plot([t0, t1], [i, i], color=c, lw=2.5, solid_capstyle="butt")
        if s.get("ttft_s") is not None:
            top.plot(t0 + s["ttft_s"], i, "o", color="black", ms=2.5)
        if s.get("cut"):
            top.plot(t1, i, "x", color="tab:red", ms=7, mew=2)
    m = d.get("marks") or {}
    for name, style in (("fault", "tab:red"), ("restore", "tab:orange"), ("primary_ok", "tab:purple")):
        if m.get(name) is not None:
            for ax in (top, bottom):
                ax.axvline(m[name], color=style, ls="--", lw=1)
            top.text(m[name], len(streams) + 0.5, name.replace("_", " "), color=style, fontsize=8, ha="left")
    from matplotlib.lines import Line2D

    top.legend(handles=[Line2D([], [], color="tab:blue", lw=2.5, label=f"whole, {primary}"),
                        Line2D([], [], color="tab:green", lw=2.5, label=f"whole, {secondary}"),
                        Line2D([], [], color="tab:red", lw=2.5, marker="x", label="cut (failed, HTTP 200)"),
                        Line2D([], [], color="tab:gray", lw=2.5, label="failed to start")],
               loc="upper right", fontsize=8)
    m_ = doc.get("metrics") or {}
    top.set_ylabel("stream (in order sent)")
    top.set_title(f"Streaming failover, docker {d.get('mode')} {primary}: {m_.get('cut_streams')} cut, "
                  f"{m_.get('tokens_lost')} tokens lost, TTFT penalty {m_.get('ttft_penalty_s')} s")
    xs = [s["sent_at_s"] for s in streams if s.get("ttft_s") is not None]
    ys = [s["ttft_s"] for s in streams if s.get("ttft_s") is not None]
    cs = [colour.get(s.get("backend"), "tab:gray") for s in streams if s.get("ttft_s") is not None]
    bottom.scatter(xs, ys, c=cs, s=12)
    st = d.get("stream_timeout_s")
    if st:
        bottom.axhline(st, color="gray", ls=":", lw=1)
        bottom.text(0, st, f" stream_timeout {st:g} s", fontsize=8, va="bottom", color="gray")
    bottom.set_ylabel("time to first token (s)")
    bottom.set_xlabel("run time (s)")
    fig.tight_layout()
    return fig
