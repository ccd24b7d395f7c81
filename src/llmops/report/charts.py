"""The report's charts, drawn from events.ndjson with matplotlib's Agg canvas.

matplotlib is imported inside the functions only (never at module import), and pyplot is
not used at all: each chart is a ``matplotlib.figure.Figure`` on its own Agg canvas, so no
global backend state is touched.  A chart is skipped (returns False) when its data is absent.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..evidence import JsonObject

# The chart files a run folder may hold, by chart name.
CHART_FILES: dict[str, str] = {
    "failover": "chart_failover.png",
    "qdrant": "chart_qdrant.png",
    "gpu": "chart_gpu.png",
}

# Colours that read on white and in grey scale; the error colour is kept for failures.
_PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf",
            "#bcbd22", "#7f7f7f"]
_ERROR = "#d62728"


def _num(x: Any) -> float | None:
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    return float(x)


def _figure(rows: int = 1, height: float = 4.2):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, height), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, 1, sharex=True) if rows > 1 else fig.subplots()
    return fig, axes


def _mark_phase(ax, events: list[JsonObject], phase: str, label: bool = True) -> None:
    """Vertical lines for the phase's fault and restore events."""
    seen: set[str] = set()
    for e in events:
        if e.get("kind") not in ("fault", "restore"):
            continue
        if e.get("phase") not in (phase, None):
            continue
        t = _num(e.get("t"))
        if t is None:
            continue
        is_fault = e.get("kind") == "fault"
        text = f"{'fault' if is_fault else 'restore'}: {e.get('action', '')}".rstrip(": ")
        key = "fault" if is_fault else "restore"
        ax.axvline(t, color=_ERROR if is_fault else "#2ca02c", linestyle="--", linewidth=1.2,
                   label=(key if label and key not in seen else None))
        seen.add(key)
        ax.annotate(text, xy=(t, 1), xycoords=("data", "axes fraction"), xytext=(3, -12),
                    textcoords="offset points", fontsize=8,
                    color=_ERROR if is_fault else "#2ca02c")


def chart_failover(events: list[JsonObject], path: Path) -> bool:
    reqs = [e for e in events if e.get("kind") == "request" and _num(e.get("t")) is not None]
    if not reqs:
        return False
    fig, ax = _figure()
    backends = sorted({str(e.get("backend")) for e in reqs if e.get("backend")})
    colours = {b: _PALETTE[i % len(_PALETTE)] for i, b in enumerate(backends)}
    for b in backends:
        pts = [(e["t"], e.get("latency_s")) for e in reqs
               if e.get("backend") == b and _ok(e) and _num(e.get("latency_s")) is not None]
        if pts:
            ax.scatter([p[0] for p in pts], [p[1] for p in pts], s=14, color=colours[b],
                       label=f"served by {b}")
    bad = [e for e in reqs if not _ok(e)]
    if bad:
        ys = [(_num(e.get("latency_s")) or 0.0) for e in bad]
        ax.scatter([e["t"] for e in bad], ys, s=36, marker="x", color=_ERROR,
                   label=f"failed ({len(bad)})")
    unknown = [e for e in reqs if _ok(e) and not e.get("backend")
               and _num(e.get("latency_s")) is not None]
    if unknown:
        ax.scatter([e["t"] for e in unknown], [e["latency_s"] for e in unknown], s=14,
                   color="#7f7f7f", label="backend unknown")
    _mark_phase(ax, events, "failover")
    ax.set_xlabel("run time (s)")
    ax.set_ylabel("request latency (s)")
    ax.set_title("Failover: latency per request, by serving backend")
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
    fig.tight_layout()
    fig.savefig(path, format="png")
    return True


def _ok(e: JsonObject) -> bool:
    status = e.get("status")
    return (not e.get("error")) and isinstance(status, int) and 200 <= status < 300


def chart_qdrant(events: list[JsonObject], path: Path) -> bool:
    hs = sorted((e for e in events if e.get("kind") == "rag_health"
                 and _num(e.get("t")) is not None), key=lambda e: e["t"])
    if not hs:
        return False
    fig, (ax1, ax2) = _figure(rows=2, height=5.2)
    lat = [(e["t"], e["latency_s"]) for e in hs if _num(e.get("latency_s")) is not None]
    if lat:
        ax1.plot([p[0] for p in lat], [p[1] for p in lat], marker="o", markersize=3,
                 linewidth=1, color=_PALETTE[0], label="rag /health latency")
    fails = [e for e in hs if e.get("status_code") not in (200, None) or e.get("error")]
    if fails:
        ax1.scatter([e["t"] for e in fails], [(_num(e.get("latency_s")) or 0.0) for e in fails],
                    marker="x", s=36, color=_ERROR, label="non-200 / error")
    ax1.set_ylabel("latency (s)")
    ax1.set_ylim(bottom=0)
    ax1.grid(True, alpha=0.3)
    _mark_phase(ax1, events, "qdrant")
    ax1.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
    ax1.set_title("Qdrant outage: rag /health latency and the qdrant flag")
    q = [(e["t"], 1 if e.get("qdrant") else 0) for e in hs if e.get("qdrant") is not None]
    if q:
        ax2.step([p[0] for p in q], [p[1] for p in q], where="post", color=_PALETTE[2])
        ax2.fill_between([p[0] for p in q], [p[1] for p in q], step="post", alpha=0.2,
                         color=_PALETTE[2])
    ax2.set_yticks([0, 1], ["false", "true"])
    ax2.set_ylim(-0.1, 1.2)
    ax2.set_ylabel("qdrant")
    ax2.set_xlabel("run time (s)")
    ax2.grid(True, alpha=0.3)
    _mark_phase(ax2, events, "qdrant", label=False)
    fig.tight_layout()
    fig.savefig(path, format="png")
    return True


def chart_gpu(events: list[JsonObject], path: Path, expected_mib: Any = None,
              total_mib: Any = None) -> bool:
    gs = sorted((e for e in events if e.get("kind") == "gpu_sample"
                 and _num(e.get("t")) is not None), key=lambda e: e["t"])
    if not gs:
        return False
    fig, ax = _figure()
    services: list[str] = []
    for e in gs:
        for name in (e.get("per_service") or {}):
            if name not in services:
                services.append(name)
    for i, name in enumerate(services):
        pts = [(e["t"], _num((e.get("per_service") or {}).get(name))) for e in gs]
        pts = [p for p in pts if p[1] is not None]
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], linewidth=1.5,
                    color=_PALETTE[i % len(_PALETTE)], label=name)
    used = [(e["t"], _num(e.get("used_mib"))) for e in gs]
    used = [p for p in used if p[1] is not None]
    if used:
        ax.plot([p[0] for p in used], [p[1] for p in used], linewidth=2, color="black",
                label="used (device)")
    if _num(expected_mib) is not None:
        ax.axhline(float(expected_mib), color=_ERROR, linestyle="--", linewidth=1.2,
                   label=f"budget {expected_mib:g} MiB")
    if _num(total_mib) is not None:
        ax.axhline(float(total_mib), color="#7f7f7f", linestyle=":", linewidth=1,
                   label=f"total {total_mib:g} MiB")
    _mark_phase(ax, events, "gpu")
    ax.set_xlabel("run time (s)")
    ax.set_ylabel("GPU memory (MiB)")
    ax.set_ylim(bottom=0)
    ax.set_title("GPU memory per service")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
    fig.tight_layout()
    fig.savefig(path, format="png")
    return True


def _streamed(check: JsonObject | None) -> bool:
    return bool(check and (check.get("details") or {}).get("stream"))


def chart_stream_failover(check: JsonObject, path: Path) -> bool:
    """A streamed failover: every stream from send to end, cut ones marked, and its TTFT."""
    from .stream_chart import stream_failover_figure

    fig = stream_failover_figure(check)
    fig.savefig(path, format="png")
    return True


def render_all(events: list[JsonObject], run_dir: Path, files: dict[str, str], *,
               expected_mib: Any = None, total_mib: Any = None,
               warnings: list[str] | None = None,
               failover_check: JsonObject | None = None) -> dict[str, Path]:
    """Draw every chart whose data is present; returns {chart name: path}."""
    made: dict[str, Path] = {}
    jobs = {
        "failover": lambda p: (chart_stream_failover(failover_check, p) if _streamed(failover_check)
                               else chart_failover(events, p)),
        "qdrant": lambda p: chart_qdrant(events, p),
        "gpu": lambda p: chart_gpu(events, p, expected_mib, total_mib),
    }
    for name, job in jobs.items():
        path = Path(run_dir) / files[name]
        try:
            if job(path):
                made[name] = path
        except Exception as e:  # a bad event must not cost the whole report
            if warnings is not None:
                warnings.append(f"chart {name} not drawn: {type(e).__name__}: {e}")
            if path.exists():
                path.unlink()
    return made
