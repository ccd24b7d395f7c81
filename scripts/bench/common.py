"""Helpers for the benchmark scripts: run the real CLI, read the evidence it wrote."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
LLMOPS = [sys.executable, "-m", "llmops.cli", "--project-dir", str(ROOT), "--profile", "cpu"]


def llmops(*args: str, env: dict[str, str] | None = None, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*LLMOPS, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def run_check(args: list[str], stem: str, env: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    """Run one llmops command into a fresh evidence folder; its exit code and check JSON."""
    with tempfile.TemporaryDirectory() as d:
        p = llmops("--evidence-dir", d, *args, env=env)
        f = Path(d) / "latest" / f"{stem}.json"
        if not f.exists():
            raise SystemExit(f"llmops {' '.join(args)} wrote no {stem}.json (exit {p.returncode}): {p.stderr[-500:]}")
        doc = json.loads(f.read_text())
        # The run folder goes with the temporary directory: keep what explains a failure, the
        # failed requests' own records (status, error, backend, retries), from events.ndjson.
        doc["failed_request_events"] = failed_events(Path(d) / "latest" / "events.ndjson")
        return p.returncode, doc


def failed_events(path: Path, limit: int = 10) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        e = json.loads(line)
        if e.get("kind") == "request" and not (isinstance(e.get("status"), int) and 200 <= e["status"] < 300):
            out.append({k: e.get(k) for k in ("t", "seq", "status", "latency_s", "backend", "retries", "error")})
    return out[:limit]


def med(xs: list[float | None]) -> float | None:
    v = [x for x in xs if x is not None]
    return round(statistics.median(v), 3) if v else None


def mx(xs: list[float | None]) -> float | None:
    v = [x for x in xs if x is not None]
    return round(max(v), 3) if v else None


def fmt(x: Any) -> str:
    return "n/a" if x is None else f"{x:.3f}" if isinstance(x, float) else str(x)


def table(header: list[str], rows: list[list[Any]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(fmt(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def save(name: str, data: Any, md: str) -> None:
    out = ROOT / "docs" / "bench"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(data, indent=2) + "\n")
    (out / f"{name}.md").write_text(md + "\n")
    print(md)
