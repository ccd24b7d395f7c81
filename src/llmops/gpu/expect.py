"""What the model servers should hold before anything is sampled: an `Expectation`.

One budget per server (the formula from its GGUF file and command line, overridden by the
budget file), the engine's own report from its log, and the budget file's overhead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError
from .budget import TERMS, Budget, BudgetFile, apply_overrides, budget_for_llama, load_budget_file
from .calibration import Calibration
from .llamalog import EngineReport, parse_llama_log
from .server import ModelServer


@dataclass
class Expectation:
    """The budgets by service, the engines' reports by service, how they were made (notes),
    and the budget file's overhead (added once, not per server)."""

    budgets: dict[str, Budget] = field(default_factory=dict)
    engines: dict[str, EngineReport] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    overhead_mib: float = 0.0
    budget_path: Path | None = None

    @property
    def expected_mib(self) -> float | None:
        return expected_total(self.budgets, self.overhead_mib)

    @property
    def buffer_reports(self) -> dict[str, EngineReport]:
        """The reports that have buffer-size lines: the engine column and the calibration."""
        return {n: e for n, e in self.engines.items() if not e.empty}


def expectation(servers: list[ModelServer] | None, budget_path: Path | None,
                calibration: Calibration | None = None) -> Expectation:
    """The servers' expectation, with the budget file at `budget_path` (ConfigError if it is
    malformed: read before any sampling)."""
    bf = load_budget_file(budget_path) if budget_path else None
    budgets, engines, notes = build_budgets(servers, bf, calibration)
    return Expectation(budgets, engines, notes, bf.overhead_mib if bf else 0.0, budget_path)


def expected_total(budgets: dict[str, Budget], overhead: float) -> float | None:
    totals = [b.total_mib for b in budgets.values()]
    if any(t is None for t in totals) or (not budgets and not overhead):
        return None
    return float(sum(totals)) + overhead  # type: ignore[arg-type]


def _server_budget(s: ModelServer, rep: EngineReport | None, cuda_context_mib: float | None,
                   calibration: Calibration | None) -> Budget:
    # When fit shrank the server, budget what runs (the log's context and layers): the server's
    # memory is then judged against the right plan, and the shrinking itself is its own DoD
    # line (`analysis.fit_criterion`) instead of a budget error of several percent.
    ran_ctx, ran_ngl = (rep.n_ctx, rep.offloaded[0] if rep.offloaded else None) \
        if rep is not None and rep.fit == "changed" else (None, None)
    if s.model_path is not None:
        try:
            b = budget_for_llama(s.model_path, s.argv, service=s.name, env=s.env,
                                 cuda_context_mib=cuda_context_mib, calibration=calibration,
                                 n_ctx=ran_ctx, n_gpu_layers=ran_ngl)
        except ConfigError as exc:
            b = Budget(service=s.name, error=str(exc))
    else:
        b = Budget(service=s.name, error="no host path of its model file is known")
    if ran_ctx is not None or ran_ngl is not None:
        b.assumptions.append(f"planned with what llama.cpp's fit left (its log): n_ctx {ran_ctx}, "
                             f"{ran_ngl} layers on the GPU")
    if cuda_context_mib is not None and b.error is None:
        b.sources["cuda_context_mib"] = "budget-file"
    return b


def _engine_notes(name: str, rep: EngineReport) -> list[str]:
    notes = []
    if rep.empty:
        notes.append(f"{name}: no buffer-size lines in the server log (current llama.cpp "
                     "prints them only at -lv 4; the gpu profile passes it)")
    if rep.fit == "changed":
        notes.append(f"{name}: llama.cpp's fit changed the command line: " + "; ".join(rep.fit_changes))
    elif rep.fit_changes:
        notes.append(f"{name}: llama.cpp's fit could not keep its margin and kept the command "
                     "line: " + "; ".join(rep.fit_changes))
    return notes


def _apply_budget_file(budgets: dict[str, Budget], budget_file: BudgetFile) -> None:
    for name, terms in budget_file.services.items():
        b = budgets.get(name)
        if b is None:
            b = Budget(service=name)
            for t in TERMS:                      # a file-only service: unspecified terms are 0
                setattr(b, t, 0.0)
                b.sources[t] = "budget-file (unset: 0)"
            budgets[name] = b
        apply_overrides(b, terms)
        if b.error and b.total_mib is not None:
            b.assumptions.append(f"formula unavailable ({b.error}); budget file supplies all terms")
            b.error = None


def build_budgets(servers: list[ModelServer] | None, budget_file: BudgetFile | None,
                  calibration: Calibration | None = None
                  ) -> tuple[dict[str, Budget], dict[str, EngineReport], list[str]]:
    """Formula budgets for the servers that name a model or a command line, overridden by the
    budget file; services only the budget file names are included with the terms it gives.

    The engine reports are every server log parsed, with or without buffer-size lines: what fit
    did is in the log at any log level, so its DoD line must not depend on `-lv 4`.  Whoever
    reads buffers checks `EngineReport.empty` (see `Expectation.buffer_reports`)."""
    notes: list[str] = []
    budgets: dict[str, Budget] = {}
    engines: dict[str, EngineReport] = {}
    ctx_file = budget_file.cuda_context_mib if budget_file else None
    for s in servers or []:
        if not s.is_llama_server:
            # not a llama-server (rag, qdrant, ...): budgeted only if the budget file names it;
            # its GPU memory, if any, is still attributed and shown as "no budget"
            continue
        rep = parse_llama_log(s.log_text) if s.log_text else None
        budgets[s.name] = _server_budget(s, rep, ctx_file, calibration)
        if rep is not None:
            engines[s.name] = rep
            notes += _engine_notes(s.name, rep)
    if budget_file:
        _apply_budget_file(budgets, budget_file)
    return budgets, engines, notes


__all__ = ["Expectation", "build_budgets", "expectation", "expected_total"]
