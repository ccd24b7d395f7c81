"""junit.xml: one testcase per check, in the Ant/Jenkins schema (properties, testcase*,
system-out, system-err), so a CI server shows the run like any test suite."""

from __future__ import annotations

import datetime as _dt
import json
import math
import re
import xml.etree.ElementTree as ET
from typing import Any

from ..evidence import CHECK_FILES, JsonObject
from ..manifest import Manifest

from .content import environment_rows, short
from .model import flatten_metrics, fmt_metric
from .summary import dod_phrase, failed_dod_lines


def _junit_timestamp(checks: list[JsonObject], manifest: JsonObject | None) -> str:
    cands = [c.get("started_at") for c in checks] + [Manifest.from_json(manifest).created_at]
    for s in cands:
        if not s:
            continue
        try:
            t = _dt.datetime.fromisoformat(str(s).replace("Z", "+00:00"))
        except ValueError:
            continue
        if t.tzinfo is not None:
            t = t.astimezone(_dt.timezone.utc).replace(tzinfo=None)
        return t.strftime("%Y-%m-%dT%H:%M:%S")
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")


def _junit_hostname(manifest: JsonObject | None) -> str:
    return Manifest.from_json(manifest).host.name or "localhost"


def _xml_text(s: str) -> str:
    """Drop characters XML 1.0 cannot carry."""
    return "".join(ch for ch in s if ch in "\t\n\r" or (ord(ch) >= 0x20 and ord(ch) not in
                                                        (0xFFFE, 0xFFFF) and not 0xD800 <= ord(ch) <= 0xDFFF))


def _secs(v: Any) -> str:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return "0.000"
    return f"{f:.3f}" if math.isfinite(f) and f >= 0 else "0.000"


def render_junit(summary: JsonObject, checks: dict[str, JsonObject]) -> bytes:
    rows = summary["checks"]
    manifest = summary["environment"]
    suite = ET.Element("testsuite", {
        "name": "llmops",
        "timestamp": _junit_timestamp(list(checks.values()), manifest),
        "hostname": _xml_text(_junit_hostname(manifest)),
        "tests": str(len(rows)),
        "failures": str(sum(1 for r in rows if r["status"] == "fail" or
                            (r["restore_failed"] and r["status"] != "error"))),
        "errors": str(sum(1 for r in rows if r["status"] == "error")),
        "skipped": str(sum(1 for r in rows if r["status"] == "skipped" and not r["restore_failed"])),
        "time": _secs(sum(float(r["duration_s"] or 0) for r in rows
                          if isinstance(r["duration_s"], (int, float)))),
    })
    props = ET.SubElement(suite, "properties")
    for name, value in [("run_id", summary["run_id"]), ("status", summary["status"]),
                        ("exit_code", str(summary["exit_code"])),
                        ("llmops_version", summary["tool_version"])] + \
            [(re.sub(r"[^a-z0-9]+", "_", k.lower()).strip("_"), short(v) if not isinstance(v, (dict, list))
              else json.dumps(v, sort_keys=True, default=str))
             for k, v in environment_rows(manifest)]:
        ET.SubElement(props, "property", {"name": name, "value": _xml_text(str(value))})
    for r in rows:
        cid = r["check"]
        tc = ET.SubElement(suite, "testcase", {
            "name": cid, "classname": f"llmops.{CHECK_FILES[cid]}", "time": _secs(r["duration_s"])})
        c = checks[cid]
        body = "\n".join(
            f"[{'PASS' if d.get('pass') else 'FAIL'}] {d.get('criterion', '')}: expected "
            f"{d.get('expected', '')}, measured {d.get('measured', '')}" for d in c["dod"])
        body += "\n" + "\n".join(f"{n} = {fmt_metric(n, v)}" for n, v in flatten_metrics(c["metrics"]))
        if r["status"] == "error":
            msg = r["reason"] or "the check errored"
            if r["restore_failed"]:
                msg = "RESTORE FAILED: the stack was left degraded; " + msg
            el = ET.SubElement(tc, "error", {"type": "CheckError", "message": _xml_text(msg)})
            el.text = _xml_text(body.strip())
        elif r["status"] == "fail" or r["restore_failed"]:
            bad = failed_dod_lines(c)
            parts = []
            if r["restore_failed"]:
                parts.append("RESTORE FAILED: the stack was left degraded")
            if bad:
                parts.append("failed DoD: " + "; ".join(dod_phrase(d) for d in bad))
            elif r["status"] == "fail":
                parts.append("check failed, no DoD line marked failed")
            el = ET.SubElement(tc, "failure", {
                "type": "RestoreFailed" if r["restore_failed"] else "DoDFailed",
                "message": _xml_text("; ".join(parts))})
            el.text = _xml_text(body.strip())
        elif r["status"] == "skipped":
            ET.SubElement(tc, "skipped", {"message": _xml_text(r["reason"] or "skipped")})
    out = ET.SubElement(suite, "system-out")
    out.text = _xml_text("\n".join(summary["conclusion"]))
    ET.SubElement(suite, "system-err").text = _xml_text("\n".join(summary["warnings"]))
    ET.indent(suite)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suite, encoding="utf-8") + b"\n"
