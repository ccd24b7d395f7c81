"""The committed sentence-transformers reference (tests/data/embedding_reference.json) is well formed.

Tests that compare our embedding service with it are only as good as the file, so check its
shape here, with numpy alone: no torch, no model, no network. The file is made by
tests/data/make_embedding_reference.py, which the tests never run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

REF = Path(__file__).resolve().parent / "data" / "embedding_reference.json"


@pytest.fixture(scope="module")
def ref() -> dict[str, Any]:
    return json.loads(REF.read_text(encoding="utf-8"))


def unit_rows(rows: list[list[float]], dim: int) -> np.ndarray:
    """Rows as a matrix, after checking each is `dim` finite floats of unit norm."""
    vecs = np.asarray(rows, dtype=np.float64)
    assert vecs.ndim == 2 and vecs.shape[1] == dim
    assert np.all(np.isfinite(vecs))
    # 7 significant digits per component keep the norm within ~1e-6; 1e-4 leaves room.
    assert np.all(np.abs(np.linalg.norm(vecs, axis=1) - 1.0) <= 1e-4)
    return vecs


def test_header(ref: dict[str, Any]) -> None:
    assert ref["model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert ref["dim"] == 384 and ref["normalized"] is True and ref["pooling"] == "mean"
    assert ref["producer"]["sentence_transformers"] and ref["producer"]["torch"]


def test_texts(ref: dict[str, Any]) -> None:
    texts = [t["text"] for t in ref["texts"]]
    assert len(texts) >= 32
    assert len(set(texts)) == len(texts)
    unit_rows([t["embedding"] for t in ref["texts"]], ref["dim"])


def test_retrieval_top3_matches_the_stored_vectors(ref: dict[str, Any]) -> None:
    r = ref["retrieval"]
    docs = unit_rows(r["document_embeddings"], ref["dim"])
    queries = unit_rows(r["query_embeddings"], ref["dim"])
    assert len(docs) == len(r["documents"]) >= 4
    assert len(queries) == len(r["queries"]) >= 1
    for q, qvec in zip(r["queries"], queries):
        top3 = q["top3"]
        assert len(set(top3)) == 3 and all(0 <= i < len(docs) for i in top3)
        sims = docs @ qvec  # unit vectors: the dot product is the cosine
        # Recompute with the same stable tie-break the script used; rounding moves scores by ~1e-7,
        # far less than any recorded gap, so the order must come out the same.
        assert [int(i) for i in np.argsort(-sims, kind="stable")[:3]] == top3, q["query"]
        assert np.allclose(sims[top3], q["scores"], atol=1e-5)
        ranked = np.sort(sims)[::-1]
        assert q["margin_3_4"] == pytest.approx(ranked[2] - ranked[3], abs=1e-5)
