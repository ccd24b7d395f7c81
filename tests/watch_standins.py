"""Real local HTTP servers standing in for the stack, for `llmops watch`'s tests and its benchmark
(not a test module: no test_ prefix).

Each answers as the real service does on the paths watch probes: a llama-server (`/health`,
`/metrics` in llama-server's own names, `/v1/chat/completions`), a gateway that really forwards a
completion to the primary and falls back to the secondary (so stopping the primary's stand-in
makes it fail over, and LiteLLM's `x-litellm-model-api-base` header names who served), rag's
`/health` naming its collection, and Qdrant's `/readyz` and point count.  A stand-in can be told
to hang: it reads the request and never answers.
"""

from __future__ import annotations

import json
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

LLAMA_METRICS = """# HELP llamacpp:prompt_tokens_total Number of prompt tokens processed.
# TYPE llamacpp:prompt_tokens_total counter
llamacpp:prompt_tokens_total {prompt}
# HELP llamacpp:prompt_seconds_total Prompt process time
# TYPE llamacpp:prompt_seconds_total counter
llamacpp:prompt_seconds_total {prompt_s}
# HELP llamacpp:tokens_predicted_total Number of generation tokens processed.
# TYPE llamacpp:tokens_predicted_total counter
llamacpp:tokens_predicted_total {predicted}
# HELP llamacpp:tokens_predicted_seconds_total Predict process time
# TYPE llamacpp:tokens_predicted_seconds_total counter
llamacpp:tokens_predicted_seconds_total {predicted_s}
# HELP llamacpp:n_decode_total Total number of llama_decode() calls
# TYPE llamacpp:n_decode_total counter
llamacpp:n_decode_total 12
# HELP llamacpp:prompt_tokens_seconds Average prompt throughput in tokens/s.
# TYPE llamacpp:prompt_tokens_seconds gauge
llamacpp:prompt_tokens_seconds 104.5
# HELP llamacpp:predicted_tokens_seconds Average generation throughput in tokens/s.
# TYPE llamacpp:predicted_tokens_seconds gauge
llamacpp:predicted_tokens_seconds 80.25
# HELP llamacpp:requests_processing Number of requests processing.
# TYPE llamacpp:requests_processing gauge
llamacpp:requests_processing {processing}
# HELP llamacpp:requests_deferred Number of requests deferred.
# TYPE llamacpp:requests_deferred gauge
llamacpp:requests_deferred 0
"""


class _Quiet(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that goes away mid-keep-alive (watch stopping) is no error worth a traceback."""
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class Standin:
    """One threaded HTTP server on 127.0.0.1; `routes` maps (method, path) to a function of the
    handler returning (status, headers, body).  `stop()` frees the port, `start()` takes it
    again (the same port: a restarted container)."""

    def __init__(self, name: str, routes: dict[tuple[str, str], Callable[..., tuple[int, dict[str, str], Any]]],
                 port: int = 0) -> None:
        self.name = name
        self.routes = routes
        self.hang = False
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self._release = threading.Event()
        self._conns: set[Any] = set()
        self.port = port
        self.server: ThreadingHTTPServer | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        me = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"      # keep-alive, as llama-server, uvicorn and Qdrant answer
            timeout = 5                        # and an idle connection is closed after 5 s, as theirs are

            def setup(self) -> None:
                super().setup()
                me._conns.add(self.connection)

            def finish(self) -> None:
                me._conns.discard(self.connection)
                super().finish()

            def _do(self, method: str) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                me.requests.append((method, self.path, dict(self.headers)))
                if me.hang:
                    me._release.wait(60)       # read the request, never answer
                    return
                route = me.routes.get((method, self.path.split("?")[0]))
                if route is None:
                    code, headers, out = 404, {}, {"error": "no such route"}
                else:
                    code, headers, out = route(self, body)
                data = out if isinstance(out, bytes) else (out.encode() if isinstance(out, str) else json.dumps(out).encode())
                self.send_response(code)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802
                self._do("GET")

            def do_POST(self) -> None:  # noqa: N802
                self._do("POST")

            def log_message(self, *_a: Any) -> None:
                pass

        return H

    def start(self) -> None:
        self._release.clear()
        srv = _Quiet(("127.0.0.1", self.port), self._handler())
        srv.daemon_threads = True
        self.server = srv
        self.port = srv.server_address[1]
        threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def stop(self) -> None:
        """As a killed process: the listener and every open (keep-alive) connection go."""
        import socket

        self._release.set()
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
        for c in list(self._conns):
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def llama(name: str, metrics: bool = True, embeddings: bool = False) -> Standin:
    # counters as llama-server keeps them; each completion: 12 prompt tokens in 0.1 s (120/s),
    # 4 generated in 0.05 s (80/s)
    state = {"prompt": 100, "prompt_s": 1.0, "predicted": 40, "predicted_s": 0.5, "processing": 0}

    def health(_h: Any, _b: bytes) -> tuple[int, dict[str, str], Any]:
        return 200, {"Content-Type": "application/json"}, {"status": "ok"}

    def metrics_route(_h: Any, _b: bytes) -> tuple[int, dict[str, str], Any]:
        if not metrics:
            return 501, {}, {"error": {"code": 501, "message": "This server does not support metrics endpoint."}}
        return 200, {"Content-Type": "text/plain; version=0.0.4"}, LLAMA_METRICS.format(**state)

    def chat(_h: Any, _b: bytes) -> tuple[int, dict[str, str], Any]:
        state["prompt"] += 12
        state["prompt_s"] = round(state["prompt_s"] + 0.1, 6)
        state["predicted"] += 4
        state["predicted_s"] = round(state["predicted_s"] + 0.05, 6)
        return 200, {"Content-Type": "application/json"}, {
            "choices": [{"message": {"role": "assistant", "content": "Hello"}}], "usage": {"completion_tokens": 1}}

    s = Standin(name, {("GET", "/health"): health, ("GET", "/metrics"): metrics_route,
                       ("POST", "/v1/chat/completions"): chat})
    s.state = state  # type: ignore[attr-defined]
    return s


def gateway(name: str, key: str, primary: Standin, secondary: Standin, timeout: float = 0.5) -> Standin:
    """Forwards each completion to the primary, then to the secondary when the primary fails (as
    LiteLLM's router does with `order`), naming the one that answered in the header."""

    def alive(_h: Any, _b: bytes) -> tuple[int, dict[str, str], Any]:
        return 200, {"Content-Type": "application/json"}, "I'm alive!"

    def chat(h: Any, body: bytes) -> tuple[int, dict[str, str], Any]:
        if h.headers.get("Authorization") != f"Bearer {key}":
            return 401, {}, {"error": {"message": "Authentication Error, invalid key"}}
        for backend in (primary, secondary):
            req = urllib.request.Request(f"{backend.url}/v1/chat/completions", data=body, method="POST",
                                         headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(req, timeout=timeout) as r:
                    out = r.read()
            except OSError:
                continue
            return 200, {"Content-Type": "application/json",
                         "x-litellm-model-api-base": f"http://{backend.name}:8080/v1",
                         "x-litellm-model-id": backend.name}, out
        return 500, {}, {"error": {"message": "No deployments available"}}

    return Standin(name, {("GET", "/health/liveliness"): alive, ("POST", "/v1/chat/completions"): chat})


def rag(name: str, collection: str = "docs") -> Standin:
    def health(_h: Any, _b: bytes) -> tuple[int, dict[str, str], Any]:
        return 200, {"Content-Type": "application/json"}, {"qdrant": True, "embedding": True, "status": "ok",
                                                           "collection": collection}

    return Standin(name, {("GET", "/health"): health})


def qdrant(name: str, collection: str = "docs", points: int = 13) -> Standin:
    def ready(_h: Any, _b: bytes) -> tuple[int, dict[str, str], Any]:
        return 200, {}, "all shards are ready"

    def count(_h: Any, _b: bytes) -> tuple[int, dict[str, str], Any]:
        return 200, {"Content-Type": "application/json"}, {"result": {"count": points}, "status": "ok", "time": 0.0}

    return Standin(name, {("GET", "/readyz"): ready, ("POST", f"/collections/{collection}/points/count"): count})


class Stack:
    """The six services as stand-ins, named as llmops' own compose services."""

    KEY = "sk-watch-test-" + "k3y" * 6

    def __init__(self) -> None:
        self.chat = llama("inference-chat")
        self.code = llama("inference-code")
        self.embedding = llama("embedding", embeddings=True)
        self.gateway = gateway("api-gateway", self.KEY, self.chat, self.code)
        self.rag = rag("rag")
        self.qdrant = qdrant("qdrant")

    @property
    def all(self) -> list[Standin]:
        return [self.gateway, self.chat, self.code, self.embedding, self.rag, self.qdrant]

    def target_args(self) -> list[str]:
        roles = {"api-gateway": "gateway", "inference-chat": "inference-primary", "inference-code": "inference-secondary",
                 "embedding": "embedding", "rag": "rag", "qdrant": "vectordb"}
        out = []
        for s in self.all:
            out += ["--target", f"{s.name}:{roles[s.name]}={s.url}"]
        return out + ["--alias", "chat-7b"]

    def close(self) -> None:
        stoppers = [threading.Thread(target=s.stop) for s in self.all]   # each shutdown waits a poll
        for t in stoppers:
            t.start()
        for t in stoppers:
            t.join()
