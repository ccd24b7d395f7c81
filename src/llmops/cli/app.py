"""The Typer app, its global options, and what every command shares: the context, `say`, the
rendering of a check the runner has written, and the one exception-to-exit-code mapping."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer

from ..errors import ExitCode, LlmopsError, UsageError
from .ui import console, print_check

if TYPE_CHECKING:
    from ..context import Context
    from ..evidence import CheckResult
    from ..runner import Phase, RunOutcome, Show

app = typer.Typer(help="Bring up a self-hosted dual-LLM stack and prove, with evidence, that it survives faults.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
chaos_app = typer.Typer(help="Inject real faults (docker stop/kill/pause) and measure recovery.",
                        no_args_is_help=True)
app.add_typer(chaos_app, name="chaos")


@dataclass
class GlobalOptions:
    """The options before the command; the Context is built from these, and only from these."""

    project_dir: Path | None = None
    profile: str = "auto"
    evidence_dir: Path | None = None
    project: str | None = None
    json: bool = False
    compose_files: tuple[Path, ...] = ()


_opts = GlobalOptions()
_ctx: list["Context"] = []


def opts() -> GlobalOptions:
    return _opts


def ctx() -> "Context":
    """The command's Context, built once from the global options."""
    from ..compose import project_name
    from ..context import Context, find_project_dir

    if not _ctx:
        o = _opts
        pd = find_project_dir(o.project_dir, explicit_files=bool(o.compose_files))
        c = Context(project_dir=pd, profile_opt=o.profile, evidence_dir=Path(o.evidence_dir or "evidence"),
                    json_out=o.json, compose_files=o.compose_files)
        # Compose's own rule for the name, from the files it will read.
        c.project = c.compose.project = project_name(o.project, c.compose.layout)
        _ctx.append(c)
    return _ctx[0]


LEVEL_STYLE = {"info": None, "warn": "yellow", "error": "red"}


def say(msg: str, level: str = "info") -> None:
    # Progress goes to stderr so that --json keeps stdout machine-readable.  The core's text is
    # plain (never markup: a bracket in a service's answer must print as itself); the level picks
    # the colour.
    console(stderr=True).print(msg, style=LEVEL_STYLE.get(level), markup=False, highlight=False)


@app.callback()
def main_options(
    project_dir: Optional[Path] = typer.Option(None, "--project-dir", help="The stack's folder: compose's default file names, or llmops' compose/ (default: nearest from cwd)."),
    profile: str = typer.Option("auto", "--profile", help="auto | gpu | cpu"),
    evidence_dir: Optional[Path] = typer.Option(None, "--evidence-dir", help="Where run folders go (default ./evidence)."),
    project: Optional[str] = typer.Option(None, "--project-name", help="Compose project name (default: compose's rule; llmops for its own layout)."),
    compose_files: Optional[list[Path]] = typer.Option(None, "--compose-file", "-f", help="A compose file of the stack (repeat for several; default: COMPOSE_FILE, else compose's default names)."),
    json_out: bool = typer.Option(False, "--json", help="Machine-readable output on stdout."),
) -> None:
    global _opts
    if profile not in ("auto", "gpu", "cpu"):
        raise UsageError(f"unknown profile {profile!r}; valid: auto, gpu, cpu")
    _opts = GlobalOptions(project_dir, profile, evidence_dir, project, json_out, tuple(compose_files or ()))
    _ctx.clear()


def show(result: "CheckResult", text: str, path: Path) -> None:
    """Render one check the runner has just written."""
    if _opts.json:
        print(json.dumps(result.to_json(), default=str))
        return
    print_check(result, text, path)


def run_checks(*phases: "Phase", render: "Show" = show) -> "RunOutcome":
    """Run a command's checks; the runner writes the evidence and hands each result to `render`."""
    from ..runner import run_checks as run

    return run(ctx(), list(phases), show=render, say=say)


def done(out: "RunOutcome") -> None:
    if not _opts.json:
        say(f"run folder: {out.path}  (exit {out.code})")
    raise typer.Exit(out.code)


def _click_errors() -> tuple[tuple[type[BaseException], ...], tuple[type[BaseException], ...]]:
    """Click's usage errors and aborts, from typer's vendored click (>= 0.26) and click itself."""
    click_errors: tuple[type[BaseException], ...] = ()
    aborts: tuple[type[BaseException], ...] = (typer.Abort,)
    try:
        from typer._click.exceptions import ClickException as VendoredClickException
        click_errors += (VendoredClickException,)
    except ImportError:
        pass
    try:
        import click

        click_errors += (click.ClickException,)
        aborts += (click.exceptions.Abort,)
    except ImportError:
        pass
    return click_errors, aborts


def main() -> None:
    """Every way out is one line on stderr and an ExitCode, never a traceback."""
    click_errors, aborts = _click_errors()
    try:
        rv = app(standalone_mode=False)
    except aborts:
        print("llmops: aborted", file=sys.stderr)
        sys.exit(ExitCode.INTERRUPTED)
    except click_errors as e:
        if type(e).__name__ == "NoArgsIsHelpError":   # bare `llmops`: help, as a usage error
            e.show()  # type: ignore[attr-defined]
        else:
            msg = e.format_message() if hasattr(e, "format_message") else str(e)
            print(f"llmops: error: {msg.splitlines()[0] if msg else type(e).__name__} (see --help)", file=sys.stderr)
        sys.exit(ExitCode.USAGE)
    except LlmopsError as e:
        print(f"llmops: error: {e}", file=sys.stderr)
        sys.exit(int(e.exit_code))
    except KeyboardInterrupt:
        print("llmops: interrupted", file=sys.stderr)
        sys.exit(ExitCode.INTERRUPTED)
    except Exception as e:  # noqa: BLE001 - one line, never a traceback; LLMOPS_DEBUG=1 shows it
        if os.environ.get("LLMOPS_DEBUG"):
            raise
        engine = type(e).__module__.startswith(("docker", "requests", "urllib3"))
        print(f"llmops: error: {'Docker engine: ' if engine else 'unexpected '}{type(e).__name__}: "
              f"{str(e).splitlines()[0][:300] if str(e) else ''} (LLMOPS_DEBUG=1 for the traceback)", file=sys.stderr)
        sys.exit(ExitCode.ENVIRONMENT if engine else ExitCode.CHECK_FAILED)
    sys.exit(rv if isinstance(rv, int) else 0)
