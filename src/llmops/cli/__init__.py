"""The `llmops` command line: parse options, call the core, render with Rich.  No logic here.

`app.py` holds the Typer app, the global options, `say` and the exit-code mapping; each
`*_cmds.py` holds a group of commands; `ui.py` is the only place that builds Rich tables.  Heavy
modules (docker, httpx, litellm, matplotlib, pynvml) are imported inside the commands so that
`llmops --help` starts fast.
"""

from __future__ import annotations

from ..errors import UsageError
from .app import app, chaos_app, main

# Importing a command module registers its commands on `app` (in --help's order).
from . import stack_cmds, chaos_cmds, gpu_cmds, run_cmds  # noqa: E402,F401  isort:skip

__all__ = ["app", "chaos_app", "main", "UsageError"]
