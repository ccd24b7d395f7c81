"""Capture real SSE bodies from the real gateway for tests/test_sse*.py, and record what the pinned
LiteLLM does to a stream when its primary dies before the first chunk, dies mid-stream, or hangs.

Run against a cpu stack that is up (it breaks and restores the primary, inference-chat):
    GATEWAY_PORT=29000 .venv/bin/python tests/data/sse_capture.py --project llmops-e2e-stream
Writes tests/data/sse_<case>.json: HTTP status, the gateway's headers of interest, the raw body
exactly as received (bytes decoded as UTF-8), when each content chunk and the end arrived, and the
fault's time, all in seconds after the request was sent.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import time
from pathlib import Path
from threading import Thread
from typing import Any

import docker
import httpx

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
PROMPT = "Count from 1 to 200, separated by commas."
KEEP = ("x-litellm-model-id", "x-litellm-model-api-base", "x-litellm-attempted-retries",
        "x-litellm-attempted-fallbacks", "x-litellm-version", "content-type")


def key() -> str:
    for line in (ROOT / "compose" / ".env").read_text().splitlines():
        if line.startswith("LITELLM_MASTER_KEY="):
            return line.split("=", 1)[1].strip()
    raise SystemExit("no LITELLM_MASTER_KEY in compose/.env")


def container(project: str, service: str) -> Any:
    c = docker.from_env().containers.list(all=True, filters={"label": [f"com.docker.compose.project={project}",
                                                                        f"com.docker.compose.service={service}"]})
    if not c:
        raise SystemExit(f"no {service} in project {project}")
    return c[0]


def restore(c: Any, port: int) -> None:
    c.reload()
    if c.attrs["State"].get("Paused"):
        c.unpause()
    elif not c.attrs["State"].get("Running"):
        c.start()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).json().get("status") == "ok":
                return
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(0.3)
    raise SystemExit("primary did not come back")


def restore_gateway(c: Any, url: str) -> None:
    c.reload()
    if not c.attrs["State"].get("Running"):
        c.start()
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health/liveliness", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise SystemExit("gateway did not come back")


def stream(url: str, model: str, max_tokens: int, fault: Any = None, after_chunks: int | None = None,
           after_s: float | None = None) -> dict[str, Any]:
    """One streamed completion; `fault()` is called after `after_chunks` content chunks or `after_s`."""
    body = {"model": model, "messages": [{"role": "user", "content": PROMPT}], "max_tokens": max_tokens,
            "temperature": 0, "stream": True, "stream_options": {"include_usage": True}}
    out: dict[str, Any] = {"model": model, "max_tokens": max_tokens, "chunk_s": [], "fault_s": None}
    raw = bytearray()
    t = time.monotonic()

    def do_fault() -> None:
        out["fault_s"] = round(time.monotonic() - t, 4)
        fault()

    if fault is not None and after_s is not None:
        Thread(target=lambda: (time.sleep(after_s), do_fault()), daemon=True).start()
    try:
        with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=httpx.Timeout(60, connect=5),
                          headers={"Authorization": f"Bearer {key()}"}) as r:
            out["status"] = r.status_code
            out["headers"] = {k: r.headers.get(k) for k in KEEP}
            out["headers_s"] = round(time.monotonic() - t, 4)
            for piece in r.iter_raw():
                raw += piece
                n = raw.count(b'"content":"')
                if n > len(out["chunk_s"]):
                    out["chunk_s"] += [round(time.monotonic() - t, 4)] * (n - len(out["chunk_s"]))
                if fault is not None and after_chunks is not None and out["fault_s"] is None and n >= after_chunks:
                    do_fault()
    except httpx.HTTPError as e:
        out["transport_error"] = f"{type(e).__name__}: {e}"
    out["end_s"] = round(time.monotonic() - t, 4)
    out["body"] = raw.decode("utf-8", errors="replace")
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--project", required=True)
    ap.add_argument("--cases", default="complete,kill_mid,kill_before,pause_mid,pause_before,gateway_kill_mid")
    a = ap.parse_args()
    if not a.project.startswith("llmops-e2e"):
        raise SystemExit("captures break the primary: use an llmops-e2e-* project, never `llmops`")
    url = f"http://127.0.0.1:{os.environ.get('GATEWAY_PORT', '8000')}"
    chat_port = int(os.environ.get("CHAT_PORT", "8001"))
    primary = container(a.project, "inference-chat")
    gateway = container(a.project, "api-gateway")
    cases = {
        # a whole stream, no fault
        "complete": lambda: stream(url, "chat-7b", 32),
        # the primary is SIGKILLed after 4 content chunks reached the client
        "kill_mid": lambda: stream(url, "chat-7b", 32, primary.kill, after_chunks=4),
        # the primary is SIGKILLed 5 ms after the request left, before any chunk
        "kill_before": lambda: stream(url, "chat-7b", 32, primary.kill, after_s=0.005),
        # the primary is paused (hung) after 4 content chunks
        "pause_mid": lambda: stream(url, "chat-7b", 32, primary.pause, after_chunks=4),
        # the primary is paused 5 ms after the request left
        "pause_before": lambda: stream(url, "chat-7b", 32, primary.pause, after_s=0.005),
        # the gateway itself is SIGKILLed after 4 content chunks: the connection drops with no
        # error event and no [DONE] (what a crashed or restarted proxy, or a cut network, gives)
        "gateway_kill_mid": lambda: stream(url, "chat-7b", 32, gateway.kill, after_chunks=4),
    }
    for name in a.cases.split(","):
        restore(primary, chat_port)
        time.sleep(6)          # past the gateway's cooldown_time (5 s): the primary is routed to again
        rec = cases[name]()
        rec.update({"case": name, "captured_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                    "how": "tests/data/sse_capture.py against the real cpu stack (llama-server + LiteLLM gateway)"})
        time.sleep(3)
        restore(primary, chat_port)
        restore_gateway(gateway, url)
        (HERE / f"sse_{name}.json").write_text(json.dumps(rec, indent=1) + "\n")
        tail = rec["body"][-300:].replace("\n", "\\n")
        print(f"{name}: status {rec.get('status')} backend {rec.get('headers', {}).get('x-litellm-model-id')} "
              f"chunks {len(rec['chunk_s'])} fault {rec['fault_s']} end {rec['end_s']} "
              f"err {rec.get('transport_error')}\n   tail: {tail}")


if __name__ == "__main__":
    main()
