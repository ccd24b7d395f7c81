"""Streaming failover against the real stack: real SSE through the real LiteLLM gateway, a real
`docker kill` of the primary llama-server.

A stream the primary was in the middle of when it died must be reported cut (and failed, though
its HTTP status is 200); with the fault between streams nothing may be cut.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def _latest(run_dir: Path) -> Path:
    return (run_dir / "latest").resolve()


def _events(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in (_latest(run_dir) / "events.ndjson").read_text().splitlines()]


def _failover(llmops: Any, tmp_path: Path, *args: str) -> tuple[Any, dict[str, Any]]:
    p = llmops("--evidence-dir", str(tmp_path), "chaos", "failover", "--stream", "--mode", "kill", *args,
               timeout=600)
    f = _latest(tmp_path) / "04_failover_test.json"
    assert f.exists(), p.stderr[-3000:]
    return p, json.loads(f.read_text())


def test_kill_mid_stream_reports_the_cut_stream(llmops: Any, healthy_stack: dict[str, Any], tmp_path: Path) -> None:
    # 1 stream/s of 32 tokens (0.4 s or more each); the fault 0.3 s after the third one left
    p, r = _failover(llmops, tmp_path, "--rps", "1", "--max-tokens", "32", "--fault-at", "2.3", "--outage", "4")
    d, m = r["details"], r["metrics"]
    fault = d["marks"]["fault"]
    mid = [s for s in d["streams"] if s["backend"] == d["target"] and s["ttft_s"] is not None
           and s["sent_at_s"] + s["ttft_s"] < fault < s["sent_at_s"] + s["end_s"]]
    assert mid, f"no stream was mid-answer on the primary at the fault (t={fault}); timeline: {d['timeline']}"
    # every stream the primary was in the middle of is cut, though its status is 200
    assert all(s["cut"] and s["status"] == 200 and not s["ok"] for s in mid), mid
    assert m["cut_streams"] >= 1 and m["cut_in_flight_on_primary"] >= len(mid)
    assert m["tokens_lost"] >= sum(s["tokens"] for s in mid) > 0
    assert m["failed_requests"] >= m["cut_streams"]
    assert d["stream_analysis"]["cut_not_in_flight"] == 0
    # the evidence: the raw SSE tail, the timeline events, the text
    ex = d["stream_analysis"]["cut_example"]
    assert ex and "data:" in ex["raw_sse_tail"] and "[DONE]" not in ex["raw_sse_tail"]
    ev = _events(tmp_path)
    cuts = [e for e in ev if e["kind"] == "stream_cut"]
    assert {e["seq"] for e in cuts} == {s["seq"] for s in d["streams"] if s["cut"]}
    assert all(e["status"] == 200 and e["ok"] is False for e in ev if e["kind"] == "request" and e.get("cut"))
    txt = (_latest(tmp_path) / "04_failover_test.txt").read_text()
    assert "cut_streams" in txt and "Raw SSE tail" in txt and "FAULT" in txt
    assert m["restored"] is True
    assert p.returncode == (0 if all(x["pass"] for x in r["dod"]) else 1), p.stderr[-2000:]


def test_a_fault_due_between_streams_waits_for_one_mid_flight(llmops: Any, healthy_stack: dict[str, Any],
                                                               tmp_path: Path) -> None:
    """One 32-token stream every 2 s (about 0.4 s each), the fault due 3.9 s in, between two:
    the experiment waits until a stream's first chunk has come from the primary, then kills it,
    so the run exercises a stream in flight (a run with none would be inconclusive, a failing
    line; 8 of 15 earlier benchmark runs had none and passed).  A 4-token stream (~50 ms) could
    end before the kill was even issued: that run is inconclusive, and says so."""
    p, r = _failover(llmops, tmp_path, "--rps", "0.5", "--max-tokens", "32", "--fault-at", "3.9", "--outage", "4")
    d, m = r["details"], r["metrics"]
    s = d["stream_analysis"]
    assert s["in_flight_on_primary"] >= 1, f"no stream in flight at the fault: {s['in_flight']}"
    assert d["marks"]["fault"] >= 3.9
    assert s["cut_not_in_flight"] == 0, s["cut"]
    inconclusive = next(x for x in r["dod"] if x["criterion"].startswith("streams in flight on the primary"))
    assert inconclusive["pass"] is True, inconclusive
    assert m["restored"] is True
    assert p.returncode == (0 if all(x["pass"] for x in r["dod"]) else 1), p.stderr[-2000:]


def test_bad_stream_options_get_one_line_and_exit_2(run_llmops: Any, one_line_error: Any) -> None:
    root = str(Path(__file__).resolve().parents[2])
    for args, words in ((["--max-tokens", "0"], "--max-tokens 0"), (["--rps", "11"], "--rps (streaming) 11")):
        p = run_llmops("--project-dir", root, "--project-name", "llmops-e2e-nothing", "chaos", "failover",
                       "--stream", *args)
        line = one_line_error(p, 2)
        assert words in line and "out of range" in line
