"""Reading a run folder leniently: the check files (strictly: they are the verdict), the events
(for the charts) and manifest.json (for the environment)."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import UsageError
from ..evidence import CHECK_FILES, CheckResult, JsonObject, MalformedEvidence, load_checks, read_events


class ReportError(UsageError):
    """The run folder cannot be reported on (missing, empty, unreadable).  Exit 2."""


def read_events_tolerant(run_dir: Path, warnings: list[str]) -> list[JsonObject]:
    try:
        return read_events(run_dir)
    except (json.JSONDecodeError, UnicodeDecodeError):
        pass
    out, bad = [], 0
    for line in (run_dir / "events.ndjson").read_text(errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            bad += 1
            continue
        if isinstance(rec, dict):
            out.append(rec)
    warnings.append(f"events.ndjson: skipped {bad} unreadable line(s)")
    return out


def read_manifest(run_dir: Path, warnings: list[str]) -> JsonObject | None:
    p = run_dir / "manifest.json"
    if not p.exists():
        return None
    try:
        data = json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        warnings.append(f"manifest.json is unreadable: {e}")
        return None
    if isinstance(data, dict) and isinstance(data.get("manifest_error"), str):
        warnings.append(f"manifest.json is incomplete: {data['manifest_error']}")
    return data if isinstance(data, dict) else {"manifest": data}


def load_run_checks(run_dir: Path) -> dict[str, JsonObject]:
    try:
        checks = load_checks(run_dir)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ReportError(f"a check file in {run_dir} is not valid JSON: {e}") from None
    for cid, c in checks.items():
        # The files are the verdict: each is read strictly, and its status recomputed from its own
        # lines and reason; a file that disagrees with itself is refused (exit 2), never rendered.
        source = str(run_dir / f"{CHECK_FILES[cid]}.json")
        try:
            r = CheckResult.from_json(c, source)
        except MalformedEvidence as e:
            raise ReportError(str(e)) from None
        if r.check != cid:
            raise ReportError(f"{source}: check {r.check!r} in the file of check {cid!r}")
    return checks
