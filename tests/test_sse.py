"""SSE parsing and the cut-stream verdict, on bodies captured from the real gateway.

tests/data/sse_*.json were written by tests/data/sse_capture.py against the real cpu stack
(llama-server b11669 behind LiteLLM 1.108.7): a whole stream; the primary SIGKILLed or paused
after 4 content chunks, or 5 ms after the request left; the gateway itself SIGKILLed mid-stream.
Each holds the HTTP status, the gateway's headers and the raw body exactly as received.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from llmops.chaos.sse import SSEParser, judge, parse_data, parse_stream

DATA = Path(__file__).parent / "data"


def cap(name: str) -> dict[str, Any]:
    return json.loads((DATA / f"sse_{name}.json").read_text())


def verdict(name: str, max_tokens: int | None = None) -> Any:
    c = cap(name)
    return judge(parse_stream(c["body"].encode()), max_tokens or c["max_tokens"])


def test_complete_stream_is_whole() -> None:
    c = cap("complete")
    v = verdict("complete")
    assert c["status"] == 200 and c["headers"]["x-litellm-model-id"] == "inference-chat"
    assert v.done and v.finish_reason == "length" and v.error_event is None
    assert not v.cut and v.reason == ""
    assert v.content_chunks == 32 and v.usage_tokens == 32 and v.tokens == 32
    assert v.text.startswith("1")


def test_primary_killed_mid_stream_is_cut_by_an_error_event_under_http_200() -> None:
    c = cap("kill_mid")
    v = verdict("kill_mid")
    assert c["status"] == 200                     # what a status-code check would call a success
    assert v.cut and not v.done
    assert v.error_event is not None and "APIConnectionError" in v.error_event
    assert "in-band error event" in v.reason and "ended without [DONE]" in v.reason
    assert 1 <= v.content_chunks < 32


def test_primary_paused_mid_stream_ends_with_a_timeout_event() -> None:
    v = verdict("pause_mid")
    assert v.cut and not v.done and v.error_event is not None and "Timeout" in v.error_event
    assert 1 <= v.content_chunks < 32


def test_gateway_killed_mid_stream_is_cut_without_done_and_without_error() -> None:
    c = cap("gateway_kill_mid")
    v = verdict("gateway_kill_mid")
    assert c["status"] == 200 and "RemoteProtocolError" in c["transport_error"]
    assert v.cut and not v.done and v.error_event is None
    assert v.reason.startswith("ended without [DONE]")
    assert "no finish_reason" in v.reason


@pytest.mark.parametrize("name", ["kill_before", "pause_before"])
def test_primary_lost_before_the_first_chunk_falls_back_whole(name: str) -> None:
    c = cap(name)
    v = verdict(name)
    assert c["headers"]["x-litellm-model-id"] == "inference-code" and c["fault_s"] < c["chunk_s"][0]
    assert not v.cut and v.done and v.tokens == 32


def test_empty_200_is_cut() -> None:
    # The complete capture's status with its body ended before the first event: what a client
    # gets when the connection drops right after the headers.
    assert cap("complete")["status"] == 200
    v = judge(parse_stream(b""), 32)
    assert v.cut and v.events == 0 and v.reason.startswith("empty body")


def test_length_with_fewer_tokens_than_asked_is_cut() -> None:
    # a whole captured stream judged as if 64 tokens had been asked: "length" after 32 is short
    v = verdict("complete", max_tokens=64)
    assert v.cut and "finish_reason length with 32 of 64 tokens" in v.reason


def test_done_without_finish_reason_is_cut() -> None:
    body = cap("complete")["body"].replace('"finish_reason":"length"', '"finish_reason":null')
    v = judge(parse_stream(body), 32)
    assert v.done and v.cut and v.reason == "no finish_reason"


def test_incremental_parser_matches_whole_body_parse() -> None:
    body = cap("kill_mid")["body"]
    p, events = SSEParser(), []
    for line in body.splitlines():
        ev = p.feed_line(line)
        if ev is not None:
            events.append(ev)
    last = p.close()
    events += [last] if last else []
    assert [e.raw for e in events] == [e.raw for e in parse_stream(body)]
    assert events[-1].kind == "error"


def test_multi_line_data_and_comments() -> None:
    p = SSEParser()
    assert p.feed_line(": keep-alive") is None
    assert p.feed_line('data: {"choices": [{"delta": {"content": "a"},') is None
    assert p.feed_line('data:  "finish_reason": null}]}') is None
    ev = p.feed_line("")
    assert ev is not None and ev.kind == "chunk" and ev.content == "a"
    assert parse_data("[DONE]").kind == "done"
    assert parse_data("not json").kind == "junk"
    assert parse_data('{"error": "boom"}').error == "boom"
