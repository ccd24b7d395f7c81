"""The embedding server's DoD lines (pure): each can fail, and none passes on missing evidence."""

from __future__ import annotations

import math

import pytest

from llmops.embedcheck import EmbeddingProbe, embedding_criteria
from llmops.errors import ConfigError
from llmops.stack import DIM_LABEL, check_labels, label_dim

GOOD = EmbeddingProbe("embedding", status_code=200, served_model="all-MiniLM-L6-v2", model_dim=384,
                      dim=384, norm=1.0)


def verdicts(p: EmbeddingProbe | None, model: str | None = "all-MiniLM-L6-v2", dim: int | None = 384) -> list[bool]:
    return [c.passed for c in embedding_criteria(p, model, dim)]


def test_a_server_serving_what_its_labels_say_passes() -> None:
    assert verdicts(GOOD) == [True, True, True]


@pytest.mark.parametrize("change, failing", [
    ({"served_model": "bge-small-en-v1.5"}, 0),
    ({"dim": 768}, 1),
    ({"model_dim": 768}, 1),          # the vector and the model's own metadata must agree
    ({"norm": 1.2}, 2),
    ({"norm": float("nan")}, 2),
])
def test_each_line_can_fail(change: dict[str, object], failing: int) -> None:
    p = EmbeddingProbe(**{**GOOD.to_json(), **change})
    v = verdicts(p)
    assert v[failing] is False and v.count(False) == 1


def test_no_probe_is_three_unmeasured_failures() -> None:
    lines = embedding_criteria(None, "all-MiniLM-L6-v2", 384)
    assert [c.passed for c in lines] == [False, False, False]
    assert all(c.measured.startswith("not measured") for c in lines)


def test_a_server_that_did_not_answer_fails_unmeasured() -> None:
    p = EmbeddingProbe("embedding", error="ConnectError: refused")
    lines = embedding_criteria(p, "all-MiniLM-L6-v2", 384)
    assert not any(c.passed for c in lines) and all("not measured" in c.measured for c in lines)


def test_without_labels_the_model_s_own_word_is_the_bar() -> None:
    """A stack of the user's may carry no llmops.model-alias / llmops.embedding-dim: then the
    server must name its model and serve vectors of its model's own n_embd."""
    assert [c.passed for c in embedding_criteria(GOOD, None, None)] == [True, True, True]
    nameless = EmbeddingProbe(**{**GOOD.to_json(), "served_model": ""})
    assert [c.passed for c in embedding_criteria(nameless, None, None)][0] is False
    short = EmbeddingProbe(**{**GOOD.to_json(), "dim": 256})
    assert [c.passed for c in embedding_criteria(short, None, None)][1] is False
    no_meta = EmbeddingProbe(**{**GOOD.to_json(), "model_dim": None})
    line = embedding_criteria(no_meta, None, None)[1]
    assert line.passed is False and "not measured" in line.measured


@pytest.mark.parametrize("value", ["384x", "-1", "0", "70000", "3.5", "３８４", "$(id)"])
def test_a_bad_dimension_label_is_a_config_error_naming_it(value: str) -> None:
    with pytest.raises(ConfigError, match=f"service embedding: label {DIM_LABEL}="):
        label_dim("embedding", {DIM_LABEL: value})
    with pytest.raises(ConfigError):
        check_labels("embedding", {DIM_LABEL: value})


def test_dimension_label() -> None:
    assert label_dim("embedding", {DIM_LABEL: "384"}) == 384
    assert label_dim("embedding", {}) is None
    assert not math.isnan(label_dim("embedding", {DIM_LABEL: " 768 "}) or 0)
