"""Secrets never reach a run folder: gateway text is scrubbed before it is stored, and router and
deployment settings outside the failover allow-list are named, not valued."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import yaml

from llmops.gateway_config import public_api_base, summarize
from llmops.redact import REDACTED, SET, scrub, scrub_json

ROOT = Path(__file__).resolve().parents[1]
KEY = "sk-llmops-AbCdEfGhIjKlMnOpQrStUvWxYz012345"

# LiteLLM's answer to a wrong key (proxy/auth/user_api_key_auth.py): the key's tail and its hash.
LITELLM_401 = ('{"error":{"message":"Authentication Error, Invalid proxy server token passed. Received API Key = '
               'sk-...2345, Key Hash (Token) =3f1c8a9e0b7d6c5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b7a6f5e4d3c2b1a. '
               'Unable to find token in cache","type":"auth_error","param":"None","code":"401"}}')


def test_scrub_litellm_401_body_keeps_the_words_drops_the_key() -> None:
    s = scrub(LITELLM_401)
    assert "2345" not in s and "3f1c8a9e" not in s
    assert "Authentication Error" in s and REDACTED in s


def test_scrub_known_secret_and_its_random_part() -> None:
    assert KEY not in scrub(f"key {KEY} here", [KEY])
    bare = KEY.removeprefix("sk-llmops-")
    assert bare not in scrub(f"got {bare}!", [KEY])
    assert scrub("hunter2 is the password", ["hunter2"]) == f"{REDACTED} is the password"


def test_scrub_patterns() -> None:
    for text, gone in [("Authorization: Bearer abc.def-123", "abc.def-123"),
                       ("bearer tok_456", "tok_456"),
                       ("api_key=verysecret1", "verysecret1"),
                       ('{"password": "p4ss"}', "p4ss"),
                       ("token: t0k3n", "t0k3n"),
                       ("x " + "a1" * 20 + " y", "a1" * 20),
                       ("tok " + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZn" + "==", "QUJDREVGR0hJSktMTU5PUF")]:
        assert gone not in scrub(text), text
    assert scrub("Authorization: Bearer abc") == f"Authorization: Bearer {REDACTED}"
    # ordinary gateway text survives
    plain = "litellm.Timeout: APITimeoutError - Request timed out. Received Model Group=chat-7b"
    assert scrub(plain) == plain
    assert scrub("ask-me disk-full") == "ask-me disk-full"
    path = "/tmp/pytest-of-root/pytest-72/Test_a_malformed_gateway_config0/config.yaml"
    assert scrub(path, limit=None) == path
    assert scrub("test_a_long_snake_case_name_that_is_no_token_at_all") == "test_a_long_snake_case_name_that_is_no_token_at_all"


def test_scrub_before_cutting_so_a_split_key_cannot_survive() -> None:
    text = "x" * 290 + " " + KEY
    out = scrub(text, [KEY], limit=300)
    assert len(out) <= 300 and "sk-llm" not in out and "AbCd" not in out
    assert len(scrub("y " * 500)) == 300 and len(scrub("y " * 500, limit=None)) == 1000


def test_scrub_json_names_secret_settings_and_scrubs_strings() -> None:
    body = {"healthy_endpoints": [{"api_base": "http://a:1/v1", "api_key": "none", "model": "openai/x"}],
            "healthy_count": 2, "usage": {"completion_tokens": 4}, "note": f"Bearer {KEY}"}
    out = scrub_json(body, [KEY])
    assert out["healthy_endpoints"][0] == {"api_base": "http://a:1/v1", "api_key": SET, "model": "openai/x"}
    assert out["healthy_count"] == 2 and out["usage"] == {"completion_tokens": 4}
    assert KEY not in json.dumps(out)


def test_api_base_loses_userinfo_and_query() -> None:
    assert public_api_base("http://u:pw@inference-chat:8080/v1?key=abc#f") == "http://inference-chat:8080/v1"
    assert public_api_base("http://inference-chat:8080/v1") == "http://inference-chat:8080/v1"
    assert public_api_base(None) is None


def test_router_summary_values_only_the_failover_settings(tmp_path: Path) -> None:
    """A planted redis_password appeared in manifest.json and 04_failover_test.json's details.router."""
    doc = yaml.safe_load((ROOT / "compose" / "litellm" / "config.yaml").read_text())
    doc = copy.deepcopy(doc)
    doc["router_settings"].update({"redis_password": "hunter2-planted", "redis_host": "cache.internal",
                                   "routing_strategy": "simple-shuffle", "fallbacks": [{"chat-7b": ["code-7b"]}]})
    doc["model_list"][0]["litellm_params"].update({"api_key": "sk-planted-in-params-000", "aws_secret": "s3cr3t",
                                                   "api_base": "http://user:pw@inference-chat:8080/v1"})
    p = tmp_path / "config.yaml"
    p.write_text(yaml.safe_dump(doc))
    s = summarize(p)
    j = json.dumps(s.to_json())
    for planted in ("hunter2-planted", "cache.internal", "sk-planted-in-params-000", "s3cr3t", "user:pw"):
        assert planted not in j, planted
    rs = s.router_settings
    assert rs["redis_password"] == SET and rs["redis_host"] == SET
    assert rs["num_retries"] == 1 and rs["allowed_fails"] == 0 and rs["cooldown_time"] == 5
    assert rs["retry_after"] == 0 and rs["enable_pre_call_checks"] is True
    assert rs["routing_strategy"] == "simple-shuffle" and rs["fallbacks"] == [{"chat-7b": ["code-7b"]}]
    d0 = s.deployments[0]
    assert d0.api_base == "http://inference-chat:8080/v1" and d0.timeout == 2 and d0.order == 1
    assert d0.other == {"litellm_params.aws_secret": SET, "litellm_params.api_key": SET}
    assert s.deployment("inference-chat") is d0 and s.timeout_s("inference-chat") == 2.0


# ---- where gateway text is stored ---------------------------------------------------------------

def test_a_completion_error_body_is_stored_scrubbed() -> None:
    import httpx

    from llmops.probes import parse_completion

    body = LITELLM_401.replace("sk-...2345", f"{KEY} (full)")
    c = parse_completion(httpx.Response(401, text=body), 0.01, (KEY,))
    assert c.error and "Authentication Error" in c.error and len(c.error) <= 200
    assert KEY not in c.error and KEY.removeprefix("sk-llmops-") not in c.error and "3f1c8a9e" not in c.error


def test_a_stream_error_body_and_raw_tail_are_stored_scrubbed() -> None:
    import asyncio

    import httpx

    from llmops.chaos.streamload import read_stream

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/401"):
            return httpx.Response(401, text=LITELLM_401)
        err = json.dumps({"error": {"message": f"upstream said: Bearer {KEY}"}})
        return httpx.Response(200, text=f'data: {{"choices":[{{"delta":{{"content":"1"}}}}]}}\n\ndata: {err}\n\n')

    async def go() -> tuple:
        async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as c:
            h = {"Authorization": f"Bearer {KEY}"}
            return (await read_stream(c, "http://127.0.0.1:1/401", h, {}, 0, 8, 5.0),
                    await read_stream(c, "http://127.0.0.1:1/ok", h, {}, 1, 8, 5.0))

    denied, cut = asyncio.run(go())
    stored = json.dumps([denied.to_json(), denied.raw_tail, cut.to_json(), cut.raw_tail,
                         cut.verdict.reason if cut.verdict else ""])
    assert denied.status == 401 and "Authentication Error" in (denied.error or "")
    assert cut.cut and "upstream said" in stored
    for leak in (KEY, KEY.removeprefix("sk-llmops-"), "2345,", "3f1c8a9e"):
        assert leak not in stored, leak


def test_a_health_body_is_stored_scrubbed() -> None:
    import asyncio

    import httpx

    from llmops.probes import probe_one
    from llmops.stack import Service

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"healthy_count": 2, "unhealthy_count": 0, "healthy_endpoints": [
            {"api_base": "http://inference-chat:8080/v1", "api_key": "sk-backend-secret-0001", "model": "openai/x"}],
            "echo": request.headers["authorization"]})

    gw = Service("api-gateway", "gateway", "cid", "gw", "running", "healthy", None, "/health/liveliness", 4000,
                 18000, labels={"llmops.expect": "litellm"})

    async def go() -> Any:
        async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as c:
            return await probe_one(c, gw, KEY, 5.0)

    r = asyncio.run(go())
    stored = json.dumps(r.to_json())
    assert r.ok and r.body["healthy_endpoints"][0]["api_key"] == SET
    assert "sk-backend-secret" not in stored and KEY not in stored
