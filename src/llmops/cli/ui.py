"""Rendering: every Rich table, colour and live view of the command line.  Only the CLI imports
this module; the core hands it rows and plain text."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.table import Table

    from ..evidence import CheckResult
    from ..gpu.plan import PlanTable

STATUS_COLOUR = {"pass": "green", "fail": "red", "skipped": "yellow", "error": "red"}


def console(stderr: bool = False) -> Any:
    from rich.console import Console

    return Console(stderr=stderr)


def print_check(result: "CheckResult", text: str, path: Path) -> None:
    """A check's text, its status and evidence file, and each failed DoD line."""
    con = console()
    con.print(text, highlight=False, markup=False, soft_wrap=True)
    con.print(f"{result.check}: {result.status.upper()}", style=STATUS_COLOUR[result.status], end="",
              markup=False, highlight=False)
    con.print(f"  evidence: {path}", markup=False, highlight=False)
    for d in result.dod:
        if not d.passed:
            con.print("  FAIL", style="red", end="", markup=False)
            con.print(f" {d.criterion}: expected {d.expected}, measured {d.measured}", markup=False, highlight=False)


def rows_table(title: str | None, columns: list[str], rows: list[list[str]], *, show_header: bool = True,
               fold: bool = False) -> "Table":
    """A plain table of text cells (markup off: cell text is data, never styling)."""
    from rich.table import Table
    from rich.text import Text

    t = Table(title=title, show_header=show_header)
    for col in columns:
        t.add_column(col, overflow="fold" if fold else "ellipsis")
    for row in rows:
        t.add_row(*[c if isinstance(c, Text) else Text(str(c)) for c in row])
    return t


def up_table(title: str, declared: list[str], services: list[Any], healthy_at: dict[str, float]) -> "Table":
    """`llmops up`'s live view: each declared service's state, health and time to healthy."""
    found = {s.name: s for s in services}
    rows = []
    for n in declared:
        s, ta = found.get(n), healthy_at.get(n)
        rows.append([n, s.state if s else "-", (s.health or "-") if s else "-",
                     f"{ta:.1f} s" if ta is not None else "…"])
    return rows_table(title, ["service", "state", "health", "healthy after"], rows)


def phase_colour(state: str) -> str:
    if state == "exit 0":
        return "green"
    if state in ("running", "exit 3"):
        return "yellow"
    return "dim" if state in ("pending", "skipped") else "red"


def certify_board(title: str, states: dict[str, str]) -> "Table":
    """`llmops certify`'s live board: each phase and its state."""
    from rich.text import Text

    return rows_table(title, ["phase", "state"],
                      [[p, Text(st, style=phase_colour(st))] for p, st in states.items()], show_header=False)


def plan_view(pt: "PlanTable") -> "Table":
    """`llmops gpu-plan`'s table: names left, figures right."""
    from rich.table import Table
    from rich.text import Text

    t = Table(title=pt.title, title_justify="left")
    for col in pt.columns:
        t.add_column(col, justify="left" if col in ("server", "fit") else "right")
    for row in pt.rows:
        t.add_row(*[Text(str(c)) for c in row])
    return t
