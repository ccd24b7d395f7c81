"""Server-sent events of an OpenAI-style streamed completion: parse them and judge whether the
stream is whole (pure: bytes in, verdict out).

Why a stream needs its own verdict: when a backend dies after content has streamed, LiteLLM sends
the partial text, then an in-band `data: {"error": ...}` event, and closes without `[DONE]`, all
under HTTP 200.  A client that judges by status code counts that as a success.  Here a stream is
**cut** when it ends without `[DONE]`, carries an error event, or delivers fewer tokens than its
finish reason implies ("length" with fewer than max_tokens tokens, or no finish reason at all).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..redact import scrub

DONE = "[DONE]"


@dataclass
class SSEEvent:
    """One `data:` event: the [DONE] sentinel, a completion chunk, an error, or unparseable text."""

    kind: str                     # "done" | "chunk" | "error" | "junk"
    raw: str
    content: str = ""
    finish_reason: str | None = None
    usage_tokens: int | None = None
    error: str | None = None


def parse_data(payload: str) -> SSEEvent:
    """One event's data (the text after `data:`)."""
    payload = payload.strip()
    if payload == DONE:
        return SSEEvent("done", payload)
    try:
        doc = json.loads(payload)
    except ValueError:
        return SSEEvent("junk", payload)
    if not isinstance(doc, dict):
        return SSEEvent("junk", payload)
    if "error" in doc:
        err = doc["error"]
        msg = err.get("message") if isinstance(err, dict) else err
        return SSEEvent("error", payload, error=scrub(" ".join(str(msg).split()), limit=300))
    content, finish = "", None
    choices = doc.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        c0 = choices[0]
        delta = c0.get("delta") if isinstance(c0.get("delta"), dict) else {}
        content = delta.get("content") or ""
        finish = c0.get("finish_reason")
    usage = doc.get("usage")
    n = usage.get("completion_tokens") if isinstance(usage, dict) else None
    return SSEEvent("chunk", payload, content if isinstance(content, str) else "",
                    finish if isinstance(finish, str) else None, n if isinstance(n, int) else None)


class SSEParser:
    """Incremental: feed decoded lines as they arrive, get the events they complete.

    SSE events are separated by a blank line and may span several `data:` lines (joined with a
    newline); comment lines (`:`) and other fields are ignored."""

    def __init__(self) -> None:
        self._data: list[str] = []

    def feed_line(self, line: str) -> SSEEvent | None:
        line = line.rstrip("\r\n")
        if line == "":
            return self._flush()
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        if name == "data":
            self._data.append(value[1:] if value.startswith(" ") else value)
        return None

    def _flush(self) -> SSEEvent | None:
        if not self._data:
            return None
        payload, self._data = "\n".join(self._data), []
        return parse_data(payload)

    def close(self) -> SSEEvent | None:
        """The end of the body: an event without its blank line still counts (a server may close
        right after the last `data:` line)."""
        return self._flush()


def parse_stream(body: bytes | str) -> list[SSEEvent]:
    """A whole captured body into its events."""
    text = body.decode("utf-8", errors="replace") if isinstance(body, bytes) else body
    p, out = SSEParser(), []
    for line in text.splitlines():
        ev = p.feed_line(line)
        if ev is not None:
            out.append(ev)
    last = p.close()
    if last is not None:
        out.append(last)
    return out


@dataclass
class StreamVerdict:
    """What a client received, summed over the events."""

    done: bool
    error_event: str | None
    finish_reason: str | None
    content_chunks: int           # chunks that carried text: one per token from llama-server
    usage_tokens: int | None      # completion_tokens from a usage chunk, when the server sent one
    text: str
    cut: bool
    reason: str                   # why it is cut ("" when whole)
    junk: int = 0
    events: int = 0

    @property
    def tokens(self) -> int:
        """Tokens the client received: the server's own count when it gave one, else the chunks."""
        return self.usage_tokens if self.usage_tokens is not None else self.content_chunks

    def to_json(self) -> dict[str, Any]:
        return {"done": self.done, "error_event": self.error_event, "finish_reason": self.finish_reason,
                "content_chunks": self.content_chunks, "usage_tokens": self.usage_tokens, "tokens": self.tokens,
                "cut": self.cut, "reason": self.reason, "events": self.events}


def judge(events: Iterable[SSEEvent], max_tokens: int) -> StreamVerdict:
    """Whole or cut, from the events of a stream that answered HTTP 200."""
    done, err, finish, chunks, usage, junk, n = False, None, None, 0, None, 0, 0
    parts: list[str] = []
    for ev in events:
        n += 1
        if ev.kind == "done":
            done = True
        elif ev.kind == "error":
            err = err or ev.error or "error event"
        elif ev.kind == "junk":
            junk += 1
        else:
            if ev.content:
                chunks += 1
                parts.append(ev.content)
            finish = ev.finish_reason or finish
            if ev.usage_tokens is not None:
                usage = ev.usage_tokens
    tokens = usage if usage is not None else chunks
    reasons = []
    if err is not None:
        reasons.append(f"in-band error event: {err[:120]}")
    if not done:
        reasons.append("ended without [DONE]" if n else "empty body: no event at all")
    if finish is None:
        reasons.append("no finish_reason")
    elif finish == "length" and tokens < max_tokens:
        reasons.append(f"finish_reason length with {tokens} of {max_tokens} tokens")
    return StreamVerdict(done, err, finish, chunks, usage, "".join(parts), bool(reasons), "; ".join(reasons),
                         junk, n)

