"""Open-loop streaming load: `stream: true` completions read chunk by chunk with httpx, each one
recorded as a `StreamRequest` on the load generator's monotonic clock.

Same schedule as the plain load (request k leaves at start + k/rps whatever earlier ones are
doing); only what one request is, and what is recorded about it, differs.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx

from ..backends import HostMap, backend_of
from ..evidence import JsonObject
from ..rounding import rounded
from ..redact import bearer_of, scrub
from .loadgen import LoadGenerator
from .sse import SSEParser, StreamVerdict, judge

# A streaming request holds a connection and a model slot for its whole generation (a 32-token
# stream takes about 0.4 s of the one CPU slot here), so the offered rate is capped far below the
# plain load's 50/s: beyond it the queue, not the failover, would set every figure.
MAX_STREAM_RPS = 10.0
DEFAULT_STREAM_RPS = 1.0
DEFAULT_STREAM_MAX_TOKENS = 32
RAW_TAIL_BYTES = 1500
# A prompt whose answer runs to max_tokens, so that every stream is long enough to be cut in
# the middle and "finish_reason: length" tells how many tokens a whole stream carries.
STREAM_PROMPT = "Count from 1 to 200, separated by commas."


def stream_payload(alias: str, max_tokens: int) -> dict[str, object]:
    """The load's streamed completion request, as sent."""
    return {"model": alias, "messages": [{"role": "user", "content": STREAM_PROMPT}], "max_tokens": max_tokens,
            "temperature": 0, "stream": True, "stream_options": {"include_usage": True}}


@dataclass
class StreamRequest:
    seq: int
    t_send: float                      # monotonic
    status: int | None = None
    backend: str | None = None
    model_id: str | None = None
    retries: str | None = None
    fallbacks: str | None = None
    error: str | None = None           # transport error or non-200 body
    t_headers: float | None = None     # seconds after t_send
    chunk_s: list[float] = field(default_factory=list)   # seconds after t_send, one per content chunk
    t_end_s: float = 0.0               # seconds after t_send: when the body ended (or broke)
    max_tokens: int = 0
    verdict: StreamVerdict | None = None
    raw_tail: str = ""                 # the last bytes of the body, kept for cut streams

    # ---- the timeline protocol (timeline.Req) -------------------------------------------------
    @property
    def latency_s(self) -> float:
        return self.t_end_s

    @property
    def t_done(self) -> float:
        return self.t_send + self.t_end_s

    @property
    def cut(self) -> bool:
        """A stream that answered 200 and then broke: no [DONE], an error event, or short."""
        return self.status == 200 and (self.verdict is None or self.verdict.cut)

    @property
    def ok(self) -> bool:
        """Whole.  A cut stream is a failed request, whatever its HTTP status."""
        return self.status == 200 and self.verdict is not None and not self.verdict.cut

    # ---- what the client saw ------------------------------------------------------------------
    @property
    def ttft_s(self) -> float | None:
        return self.chunk_s[0] if self.chunk_s else None

    @property
    def started(self) -> bool:
        return bool(self.chunk_s)

    @property
    def tokens(self) -> int:
        return self.verdict.content_chunks if self.verdict else 0

    @property
    def t_first(self) -> float | None:
        return self.t_send + self.chunk_s[0] if self.chunk_s else None

    @property
    def t_last_chunk(self) -> float | None:
        return self.t_send + self.chunk_s[-1] if self.chunk_s else None

    def to_json(self) -> JsonObject:
        v = self.verdict
        return {"seq": self.seq, "status": self.status, "backend": self.backend, "model_id": self.model_id,
                "retries": self.retries, "fallbacks": self.fallbacks, "error": self.error,
                "ttft_s": rounded(self.ttft_s, 4), "t_headers_s": rounded(self.t_headers, 4), "end_s": rounded(self.t_end_s, 4),
                "tokens": self.tokens, "done": v.done if v else False, "error_event": v.error_event if v else None,
                "finish_reason": v.finish_reason if v else None, "cut": self.cut, "ok": self.ok,
                "cut_reason": v.reason if (v and self.cut) else ("no verdict" if self.cut else None),
                "chunk_s": [round(x, 4) for x in self.chunk_s]}


@dataclass(frozen=True)
class StreamProof:
    """A deployment's streamed pre-flight completion, whole (`details.stream_preflight[]`, fields
    in that order)."""

    deployment: str
    ttft_s: float
    tokens: int
    end_s: float

    @classmethod
    def of(cls, deployment: str, r: StreamRequest) -> "StreamProof":
        return cls(deployment, round(r.ttft_s or 0, 4), r.tokens, round(r.t_end_s, 4))

    def to_json(self) -> JsonObject:
        return asdict(self)


@dataclass
class StreamWatch:
    """What a caller of `read_stream` follows: the streams open now (by seq: a fault must land
    mid-stream) and the stack's DNS names (`Stack.hosts`), through which a reply's api_base
    header names the compose service that served it."""

    opened: dict[int, StreamRequest] | None = None
    hosts: HostMap = field(default_factory=dict)


async def read_stream(client: httpx.AsyncClient, url: str, headers: dict[str, str], payload: dict[str, object],
                      seq: int, max_tokens: int, timeout_s: float,
                      watch: StreamWatch | None = None) -> StreamRequest:
    """One streamed completion, every chunk timed; never raises for HTTP or transport trouble.
    While it is open it sits in `watch.opened` (by seq), so a caller can see streams mid-flight."""
    watch = watch or StreamWatch()
    r = StreamRequest(seq, time.monotonic(), max_tokens=max_tokens)
    if watch.opened is not None:
        watch.opened[seq] = r
    try:
        return await _read_stream(client, url, headers, payload, r, timeout_s, watch.hosts)
    finally:
        if watch.opened is not None:
            watch.opened.pop(seq, None)


async def _read_stream(client: httpx.AsyncClient, url: str, headers: dict[str, str], payload: dict[str, object],
                       r: StreamRequest, timeout_s: float, hosts: HostMap) -> StreamRequest:
    t, max_tokens = r.t_send, r.max_tokens
    parser, events, raw = SSEParser(), [], bytearray()
    try:
        async with client.stream("POST", url, json=payload, headers=headers,
                                 timeout=httpx.Timeout(timeout_s, connect=5.0)) as resp:
            r.t_headers = time.monotonic() - t
            h = resp.headers
            r.status = resp.status_code
            r.backend = backend_of(h.get("x-litellm-model-api-base"), hosts)
            r.model_id, r.retries = h.get("x-litellm-model-id"), h.get("x-litellm-attempted-retries")
            r.fallbacks = h.get("x-litellm-attempted-fallbacks")
            if resp.status_code != 200:
                body = await resp.aread()
                raw += body
                r.error = scrub(body.decode(errors="replace"), bearer_of(headers), limit=300)
            else:
                async for line in resp.aiter_lines():
                    now = time.monotonic() - t
                    raw += (line + "\n").encode()
                    if len(raw) > 4 * RAW_TAIL_BYTES:
                        del raw[:-RAW_TAIL_BYTES]
                    ev = parser.feed_line(line)
                    if ev is not None:
                        events.append(ev)
                        if ev.kind == "chunk" and ev.content:
                            r.chunk_s.append(now)
    except (httpx.HTTPError, asyncio.TimeoutError) as e:
        r.error = scrub(f"{e.__class__.__name__}: {e}", bearer_of(headers), limit=300)
    last = parser.close()
    if last is not None:
        events.append(last)
    r.t_end_s = time.monotonic() - t
    if r.status == 200:
        r.verdict = judge(events, max_tokens)
    # the tail goes into evidence as the cut example: scrubbed like any gateway text (an error event
    # in it is the gateway's own words), the whole buffer before the cut
    r.raw_tail = scrub(bytes(raw).decode(errors="replace"), bearer_of(headers), limit=None)[-RAW_TAIL_BYTES:]
    return r


class StreamLoadGenerator(LoadGenerator):
    """The plain load generator's open-loop schedule, with streamed requests."""

    requests: list[StreamRequest]  # type: ignore[assignment]

    def __init__(self, url: str, master_key: str, alias: str, rps: float, max_duration_s: float,
                 timeout_s: float = 30.0, on_request: Any = None, max_tokens: int = DEFAULT_STREAM_MAX_TOKENS) -> None:
        super().__init__(url, master_key, alias, rps, max_duration_s, timeout_s, on_request, max_tokens)
        self.opened: dict[int, StreamRequest] = {}

    def mid_stream_on(self, backend: str) -> bool:
        """A stream is open whose chunks come from `backend`: at least one chunk, not yet ended."""
        return any(r.backend == backend and r.chunk_s for r in list(self.opened.values()))

    async def wait_mid_stream(self, backend: str, timeout_s: float) -> bool:
        """Wait (polling every 5 ms) until a stream is mid-flight on `backend`; False at the timeout."""
        deadline = time.monotonic() + timeout_s
        while not self.mid_stream_on(backend):
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.005)
        return True

    async def _one(self, client: httpx.AsyncClient, seq: int) -> None:  # type: ignore[override]
        r = await read_stream(client, self.url, self.headers, stream_payload(self.alias, self.max_tokens), seq,
                              self.max_tokens, self.timeout_s, StreamWatch(self.opened, self.hosts))
        self.requests.append(r)
        if self.on_request:
            self.on_request(r)


def stream_once(gateway_url: str, master_key: str, model: str, max_tokens: int,
                timeout_s: float = 30.0, hosts: HostMap | None = None) -> StreamRequest:
    """One streamed completion, synchronously: the pre-flight's probe of each deployment (`hosts`:
    the stack's DNS names, see `StreamWatch`)."""

    async def go() -> StreamRequest:
        async with httpx.AsyncClient() as c:
            return await read_stream(c, f"{gateway_url}/v1/chat/completions",
                                     {"Authorization": f"Bearer {master_key}"},
                                     stream_payload(model, max_tokens), 0, max_tokens, timeout_s,
                                     StreamWatch(hosts=hosts or {}))

    return asyncio.run(go())


def stream_defaults(stream: bool, rps: float | None, max_tokens: int | None) -> tuple[float, int]:
    """`--rps` and `--max-tokens` when not given: one-token requests at 10/s for the plain load,
    32-token streams at 1/s (one CPU slot per server is then busy about half the time, so
    a stream seldom queues behind another) for the streamed one."""
    if rps is None:
        rps = DEFAULT_STREAM_RPS if stream else 10.0
    if max_tokens is None:
        max_tokens = DEFAULT_STREAM_MAX_TOKENS if stream else 1
    return rps, max_tokens
