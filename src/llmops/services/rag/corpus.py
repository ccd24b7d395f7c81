"""The demo corpus rag ingests into an empty collection, so a fresh stack answers queries at once."""

from __future__ import annotations

from typing import Any

# By topic; each text becomes one document whose metadata names its topic.
_TEXTS: dict[str, tuple[str, ...]] = {
    "llama.cpp": (
        "llmops runs two llama.cpp llama-server instances: inference-chat on port 8001 is the primary and inference-code on port 8004 is the secondary.",
        "llama-server answers GET /health with HTTP 503 while the model is loading and with {\"status\":\"ok\"} once it is ready to serve completions.",
    ),
    "litellm": (
        "The api-gateway is a LiteLLM proxy on port 8000. The alias chat-7b routes to the chat server first (order 1) and to the code server second (order 2).",
        "LiteLLM failover: when the primary deployment refuses connections or returns a 500, the router retries on the secondary and puts the primary in cooldown.",
        "The response header x-litellm-model-api-base names the backend that served a request, which proves whether failover to the secondary happened.",
        "Failback is governed by LiteLLM's cooldown_time: after the primary recovers, traffic stays on the secondary until the cooldown ends.",
    ),
    "qdrant": (
        "Qdrant is the vector database on port 6333. It exposes /healthz, /livez and /readyz, and stores collections of points with vectors and payloads.",
        "Qdrant writes every update to a write-ahead log before acknowledging it, so acknowledged points survive a crash or a kill of the process.",
    ),
    "rag": (
        "The rag service retries Qdrant searches with exponential backoff and jitter, bounded by an attempt limit and a total deadline, and answers 503 with Retry-After when Qdrant stays down.",
    ),
    "embeddings": (
        "The embedding service is a third llama-server: it turns text into 384-dimensional unit vectors with all-MiniLM-L6-v2 on its OpenAI-shaped /v1/embeddings endpoint.",
    ),
    "gpu": (
        "GPU memory for a GGUF model is roughly its weights plus the KV cache, which grows with context length, layers and the number of parallel slots.",
        "llmops measures GPU memory with NVML and attributes each process to its container and service, comparing used MiB against the expected budget.",
    ),
}

DEMO_CORPUS: list[dict[str, Any]] = [
    {"text": text, "metadata": {"topic": topic}} for topic, texts in _TEXTS.items() for text in texts
]
