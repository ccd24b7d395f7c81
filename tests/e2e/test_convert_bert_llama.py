"""convert_bert's GGUF in the REAL llama-server (the image the stack's embedding service runs).

The tiny BERT of tests/bert_tiny.py is converted and served with `--embeddings`; llama-server's
tokenization of a sentence must be the WordPiece ids worked out by hand, and its vector must be the
numpy reference forward pass's on those ids (cosine >= 0.9999 for f32, 0.999 for f16, 0.995 for
q8_0: llama.cpp's GELU is the tanh approximation and it sums in its own order).  A GGUF written with
the wrong pooling scored 0.66-0.68 here, and the reference alone puts it < 0.9
(test_convert_bert.py::test_reference_is_sensitive_to_pooling), so the floors do discriminate.

Each server is a throw-away container of our own (name `llmops-e2e-convert-…`), with no network at
all: the GGUF is copied in, and every request is a `curl` run inside it against 127.0.0.1.
Nothing is published on the host and no other container is touched.
"""

from __future__ import annotations

import io
import json
import re
import secrets
import sys
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # tests/, for the shared tiny BERT
from bert_tiny import ID, SENTENCE, SENTENCE_IDS, Checkpoint, build_checkpoint, cosine, reference_embedding  # noqa: E402

from llmops.convert_bert import convert_bert  # noqa: E402

pytestmark = pytest.mark.e2e

IMAGE = "llmops/llama-cpu:latest"
PORT = 8090
HEALTH_TIMEOUT_S = 30.0


@dataclass
class Served:
    """One llama-server container serving one converted GGUF."""

    container: Any
    checkpoint: Checkpoint
    pooling: str
    floor: float

    def call(self, method: str, path: str, body: object | None = None) -> Any:
        """A request from inside the container (it has no network to reach it from outside)."""
        cmd = ["curl", "-s", "--max-time", "20", "-X", method, f"http://127.0.0.1:{PORT}{path}"]
        if body is not None:
            cmd += ["-H", "Content-Type: application/json", "-d", json.dumps(body)]
        import docker

        try:
            code, out = self.container.exec_run(cmd)
        except docker.errors.APIError as e:   # the server died (an abort in llama.cpp): show why
            raise AssertionError(f"{path}: {e.explanation}\n{self.logs()[-3000:]}") from None
        assert code == 0, f"curl {path} exited {code}: {out[-500:]!r}\n{self.logs()[-3000:]}"
        return json.loads(out)

    def logs(self) -> str:
        return self.container.logs().decode("utf-8", "replace")


def _tar_of(path: Path, name: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size, info.mode = path.stat().st_size, 0o444
        with path.open("rb") as f:
            tar.addfile(info, f)
    return buf.getvalue()


def _wait_healthy(c: Any) -> None:
    deadline = time.monotonic() + HEALTH_TIMEOUT_S
    last = b""
    while time.monotonic() < deadline:
        c.reload()
        if c.status not in ("created", "running"):
            raise AssertionError(f"llama-server exited ({c.status}):\n{c.logs().decode('utf-8', 'replace')[-3000:]}")
        code, last = c.exec_run(["curl", "-s", "--max-time", "2", f"http://127.0.0.1:{PORT}/health"])
        if code == 0 and b'"ok"' in last:
            return
        time.sleep(0.2)
    raise AssertionError(f"llama-server not healthy in {HEALTH_TIMEOUT_S:.0f}s (last /health {last!r}):\n"
                         f"{c.logs().decode('utf-8', 'replace')[-3000:]}")


# (id, outtype, pooling in 1_Pooling, tokenizer files, cosine floor)
VARIANTS = [
    ("f32-mean", "f32", "mean", "json", 0.9999),
    ("f16-mean", "f16", "mean", "json", 0.999),
    ("f32-cls", "f32", "cls", "json", 0.9999),
    # A vocab.txt folder: before the converter wrote the special ids itself, llama-server fell back
    # to [CLS]=101 and aborted on the first request.
    ("f32-vocabtxt", "f32", "mean", "vocab.txt", 0.9999),
    # Q8_0 measured 0.99934 with b11669; the floor leaves room for another build's rounding and is
    # still far above a wrong model (the wrong pooling measured 0.66 on this one).
    ("q8_0-mean", "q8_0", "mean", "json", 0.995),
]


@pytest.fixture(scope="module")
def llama_image(docker_engine: Any) -> str:
    import docker

    try:
        docker_engine.images.get(IMAGE)
    except docker.errors.ImageNotFound:
        pytest.skip(f"image {IMAGE} is not built here (`llmops build` makes it)")
    return IMAGE


@pytest.fixture(scope="module", params=VARIANTS, ids=[v[0] for v in VARIANTS])
def served(request: pytest.FixtureRequest, docker_engine: Any, llama_image: str,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    vid, outtype, pooling, tokenizer, floor = request.param
    tmp = tmp_path_factory.mktemp(f"convert-{vid}")
    ck = build_checkpoint(tmp / "tiny-bert", pooling=pooling, tokenizer=tokenizer)
    model = convert_bert(ck.path, tmp / "tiny.gguf", outtype=outtype)
    name = f"llmops-e2e-convert-{secrets.token_hex(4)}"
    c = None
    try:
        # -lv 4: llama.cpp prints the hparams it loaded ("pooling type = 1") only at that verbosity.
        c = docker_engine.containers.create(
            llama_image, name=name, network_mode="none", labels={"llmops.e2e": "convert-bert"},
            command=["llama-server", "-m", "/m.gguf", "--embeddings", "--host", "127.0.0.1",
                     "--port", str(PORT), "-t", "1", "-lv", "4"])
        c.put_archive("/", _tar_of(model.path, "m.gguf"))
        c.start()
        _wait_healthy(c)
        yield Served(container=c, checkpoint=ck, pooling=pooling, floor=floor)
    finally:
        if c is not None:
            c.remove(force=True)


def test_tokenization_is_wordpiece_with_cls_and_sep(served: Served) -> None:
    got = served.call("POST", "/tokenize", {"content": SENTENCE, "add_special": True})["tokens"]
    assert got == SENTENCE_IDS, f"llama.cpp {got}\nexpected {SENTENCE_IDS}"
    assert got[0] == ID["[CLS]"] and got[-1] == ID["[SEP]"]


def test_embedding_matches_the_numpy_reference(served: Served) -> None:
    resp = served.call("POST", "/v1/embeddings", {"input": SENTENCE})
    vec = np.asarray(resp["data"][0]["embedding"], dtype=np.float64)
    assert resp["usage"]["prompt_tokens"] == len(SENTENCE_IDS)
    ck = served.checkpoint
    ref = reference_embedding(ck.weights, ck.config, SENTENCE_IDS, pooling=served.pooling)
    assert vec.shape == (ck.config.hidden,)
    assert np.linalg.norm(vec) == pytest.approx(1.0, abs=1e-4)
    cos = cosine(vec, ref)
    print(f"cosine(llama-server, numpy reference) = {cos:.7f}")
    assert cos >= served.floor, f"cosine {cos:.6f} < {served.floor}"


def test_models_reports_the_model_s_size(served: Served) -> None:
    meta = served.call("GET", "/v1/models")["data"][0]["meta"]
    cfg = served.checkpoint.config
    assert (meta["n_embd"], meta["n_vocab"], meta["n_ctx_train"]) == (cfg.hidden, cfg.vocab, cfg.max_position)


def test_log_says_the_pooling_from_the_gguf(served: Served) -> None:
    """No --pooling flag was given: the pooling type llama-server used came from the GGUF."""
    want = {"mean": 1, "cls": 2}[served.pooling]
    used = re.findall(r"print_info: pooling type\s*=\s*(-?\d+)", served.logs())
    assert used == [str(want)], [ln for ln in served.logs().splitlines() if "pooling" in ln]
