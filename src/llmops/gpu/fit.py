"""What llama.cpp's `-fit` (on by default) will do to each server, in start order.

Before loading, a server projects the device memory its buffers need and compares it with the
free memory it sees; it must leave `-fitt` MiB (1024) free.  If not, it lowers the context it
was not told explicitly (down to `-fitc`, 4096), then offloads fewer layers if `-ngl` was not
given.  Values set on the command line are kept (llama.cpp's fit does not override them); such
a server then fails to fit.  Each server sees the free memory left by those started before it,
minus its own per-process overhead.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .budget import CTX_PAD, Budget, budget_from_info
from .llamaargs import ServerOptions
from .model import ModelInfo


@dataclass
class FitOutcome:
    budget: Budget                    # the budget after fit (the one the server comes up with)
    changes: list[str] = field(default_factory=list)
    fits: bool = True
    free_before_mib: float | None = None


def _fits(b: Budget, free: float, margin: float) -> bool:
    return b.buffers_mib is not None and free - b.buffers_mib >= margin


def fit_server(info: ModelInfo, opts: ServerOptions, asked: Budget, free_mib: float,
               service: str, calibration: object = None) -> FitOutcome:
    """Predict the fit step of one server given the free device memory before it starts."""
    oh = asked.cuda_context_mib or 0.0
    free = free_mib - oh                     # its CUDA context exists before it measures
    margin = opts.fit_target_mib
    out = FitOutcome(budget=asked, free_before_mib=free_mib)
    if asked.buffers_mib is None or _fits(asked, free, margin):
        return out
    if not opts.fit:
        out.fits = False
        out.changes.append(f"-fit off: needs {asked.buffers_mib:.0f} MiB + {margin:.0f} MiB margin,"
                           f" {free:.0f} MiB free; the load will fail")
        return out
    kw = dict(service=service, cuda_context_mib=asked.cuda_context_mib)
    n_ctx, ngl = asked.params["n_ctx"], asked.params["n_gpu_layers"]
    if "ctx" not in opts.user_set and n_ctx > opts.fit_ctx_min:
        best = None
        c = n_ctx
        while c > opts.fit_ctx_min:
            c = max(opts.fit_ctx_min, (c // 2) // CTX_PAD * CTX_PAD)
            b = budget_from_info(info, opts, n_ctx=c, **kw)
            if _fits(b, free, margin):
                # lower by one pad step at a time from the first context that fits upward
                hi = min(n_ctx, c * 2)
                while hi - CTX_PAD > c:
                    mid = (hi + c) // 2 // CTX_PAD * CTX_PAD
                    if _fits(budget_from_info(info, opts, n_ctx=mid, **kw), free, margin):
                        c, b = mid, budget_from_info(info, opts, n_ctx=mid, **kw)
                    else:
                        hi = mid
                best = b
                break
        if best is not None:
            out.budget = best
            out.changes.append(f"n_ctx {n_ctx} -> {best.params['n_ctx']}")
            return out
        n_ctx = opts.fit_ctx_min
        out.changes.append(f"n_ctx {asked.params['n_ctx']} -> {n_ctx}")
    if "ngl" not in opts.user_set:
        for n in range(ngl - 1, -1, -1):
            b = budget_from_info(info, opts, n_ctx=n_ctx, n_gpu_layers=n, **kw)
            if _fits(b, free, margin):
                out.budget = b
                out.changes.append(f"layers on GPU {ngl} -> {n}")
                return out
    out.fits = False
    out.budget = budget_from_info(info, opts, n_ctx=n_ctx, **kw) if n_ctx != asked.params["n_ctx"] \
        else asked
    kept = [f for f, k in (("-c", "ctx"), ("-ngl", "ngl")) if k in opts.user_set]
    out.changes.append(f"does not fit in {free:.0f} MiB free with {margin:.0f} MiB margin"
                       + (f" ({' and '.join(kept)} set on the command line: fit keeps them)"
                          if kept else ""))
    return out
