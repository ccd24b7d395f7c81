"""The embedding server, asked over real HTTP what it serves: its model, its dimension, unit length.

The server is a llama-server with `--embeddings`.  Its `/v1/embeddings` answer echoes whatever
`model` the request named, so the model name is read from `/v1/models` (the `--alias`), and the
dimension both from the model's own metadata there (`meta.n_embd`) and from a real vector.
What it must serve comes from its labels (`llmops.model-alias`, `llmops.embedding-dim`).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Any

import httpx

from .evidence import Criterion
from .stack import Service

PROBE_TEXT = "failover under load"
NORM_TOLERANCE = 1e-3


@dataclass
class EmbeddingProbe:
    service: str
    status_code: int | None = None
    served_model: str | None = None     # /v1/models data[0].id
    model_dim: int | None = None        # /v1/models data[0].meta.n_embd
    dim: int | None = None              # length of a real vector
    norm: float | None = None
    latency_s: float | None = None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _models(http: httpx.Client, url: str) -> tuple[str | None, int | None]:
    resp = http.get(f"{url}/v1/models")
    resp.raise_for_status()
    first = (resp.json().get("data") or [{}])[0]
    n_embd = (first.get("meta") or {}).get("n_embd")
    return first.get("id"), n_embd if isinstance(n_embd, int) else None


def probe_embedding(svc: Service, timeout: float = 30.0, text: str = PROBE_TEXT) -> EmbeddingProbe:
    """Ask the server its model, then embed one text; every failure lands in `error`."""
    p = EmbeddingProbe(svc.name)
    if svc.host_port is None:
        p.error = "no published port (container not running?)"
        return p
    try:
        with httpx.Client(timeout=timeout) as http:
            p.served_model, p.model_dim = _models(http, svc.url)
            t = time.perf_counter()
            resp = http.post(f"{svc.url}/v1/embeddings", json={"input": [text]})
            p.latency_s = round(time.perf_counter() - t, 4)
            p.status_code = resp.status_code
            if resp.status_code == 200:
                vec = resp.json()["data"][0]["embedding"]
                p.dim = len(vec)
                p.norm = round(math.sqrt(sum(float(x) * float(x) for x in vec)), 6)
            else:
                p.error = f"HTTP {resp.status_code}: {resp.text[:200]}"
    except (httpx.HTTPError, ValueError, KeyError, IndexError, TypeError, AttributeError) as e:
        p.error = f"{e.__class__.__name__}: {str(e)[:200]}"
    return p


def embedding_criteria(p: EmbeddingProbe | None, want_model: str | None,
                       want_dim: int | None) -> list[Criterion]:
    """Model name, dimension (vector and metadata agree with the label) and unit length.  A server
    without the labels (a stack of the user's) is held to what its own model says instead: a
    named model, and vectors of the model's n_embd.  With no probe, each line fails as not measured."""
    sent = 1 if p is not None and p.status_code is not None else 0
    served = p.served_model if p else None
    dim = p.dim if p else None
    meta = p.model_dim if p else None
    dim_want = want_dim if want_dim else meta
    return [
        Criterion.judge("embedding model name (/v1/models)",
                        want_model or "a named model (no llmops.model-alias label to compare)",
                        served, lambda m: m == want_model if want_model else bool(m),
                        samples=1 if p is not None and served is not None else 0),
        Criterion.judge("embedding dimension (vector and model metadata)",
                        str(want_dim) if want_dim else f"the model's n_embd ({meta}; no llmops.embedding-dim label)",
                        (dim, meta) if dim is not None and dim_want else None,
                        lambda v: v == (dim_want, dim_want), samples=sent,
                        shown=f"{dim} (model n_embd {meta})"),
        Criterion.judge("embedding is unit length (L2 norm)", f"1 +/- {NORM_TOLERANCE:g}",
                        p.norm if p else None, lambda n: abs(n - 1.0) <= NORM_TOLERANCE, samples=sent),
    ]
