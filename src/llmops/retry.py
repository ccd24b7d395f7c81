"""Retries for network steps (apt, pip, debootstrap): a flaky mirror must not fail a build."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence

from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential


def run_with_retries(argv: Sequence[str], *, attempts: int = 3, log: str | None = None,
                     what: str = "", **kw: object) -> subprocess.CompletedProcess[str]:
    """Run a command, retrying on a non-zero exit with exponential backoff."""
    def once() -> subprocess.CompletedProcess[str]:
        out = open(log, "a") if log else None
        try:
            proc = subprocess.run(list(argv), stdout=out or subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True, **kw)  # type: ignore[call-overload]
        finally:
            if out:
                out.close()
        if proc.returncode != 0:
            tail = (proc.stdout or "")[-400:] if not log else f"see {log}"
            print(f"  {what or argv[0]} failed (exit {proc.returncode}), retrying: {tail}", file=sys.stderr)
            raise subprocess.CalledProcessError(proc.returncode, list(argv), proc.stdout)
        return proc

    for attempt in Retrying(stop=stop_after_attempt(attempts), reraise=True,
                            wait=wait_exponential(multiplier=2, min=2, max=30),
                            retry=retry_if_exception_type(subprocess.CalledProcessError)):
        with attempt:
            return once()
    raise AssertionError("unreachable")
