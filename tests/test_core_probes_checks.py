"""probes.judge / EXPECTATIONS, parse_completion, and the pure halves of checks 01 and 03.

Bodies are the ones the cpu stack really answers (captured from llama-server, LiteLLM 1.x,
our rag/embedding services and the Qdrant stand-in)."""

from __future__ import annotations

import copy
import time
from pathlib import Path

import httpx
import pytest
import yaml

from llmops.checks import health_result, health_text, status_result, status_text
from llmops.probes import EXPECTATIONS, ProbeResult, health_request, judge, parse_completion
from llmops.stack import SERVICE_LABEL, service_from_attrs

from test_core_stack import RAG_INSPECT_V1

ROOT = Path(__file__).resolve().parents[1]

LLAMA_OK = {"status": "ok"}
LLAMA_LOADING = {"error": {"code": 503, "message": "Loading model", "type": "unavailable_error"}}
LITELLM_OK = {"healthy_endpoints": [{"api_base": "http://inference-chat:8080/v1", "model": "openai/smollm2",
                                     "model_id": "inference-chat"},
                                    {"api_base": "http://inference-code:8080/v1", "model": "openai/smollm2",
                                     "model_id": "inference-code"}],
              "unhealthy_endpoints": [], "healthy_count": 2, "unhealthy_count": 0}
LITELLM_ONE_DOWN = {"healthy_endpoints": LITELLM_OK["healthy_endpoints"][1:],
                    "unhealthy_endpoints": [{"api_base": "http://inference-chat:8080/v1",
                                             "error": "Connection error."}],
                    "healthy_count": 1, "unhealthy_count": 1}
RAG_OK = {"qdrant": True, "embedding": True, "status": "ok", "collection": "docs", "corpus_ready": True,
          "breaker": {"state": "closed", "consecutive_failures": 0}}
RAG_QDRANT_DOWN = {**RAG_OK, "qdrant": False, "status": "degraded",
                   "breaker": {"state": "open", "consecutive_failures": 2}}
EMB_OK = {"ok": True, "model": "all-MiniLM-L6-v2", "dim": 384, "load_s": 6.937}

CASES = [
    # expect, code, body, good?
    ("llama", 200, LLAMA_OK, True),
    ("llama", 503, LLAMA_LOADING, False),
    ("llama", 200, {"status": "loading model"}, False),
    ("llama", 200, "ok", False),
    ("litellm", 200, LITELLM_OK, True),
    ("litellm", 200, LITELLM_ONE_DOWN, False),
    ("litellm", 200, {"healthy_count": 0, "unhealthy_count": 0}, False),   # no deployment at all
    ("litellm", 200, "I'm alive!", False),                                  # liveliness is not health
    ("litellm", 401, {"error": {"message": "Authentication Error"}}, False),
    ("rag", 200, RAG_OK, True),
    ("rag", 200, RAG_QDRANT_DOWN, False),
    ("rag", 200, {**RAG_OK, "embedding": "yes"}, False),                    # truthy is not True
    ("rag", 500, "Internal Server Error", False),
    ("embedding", 200, EMB_OK, True),
    ("embedding", 200, {**EMB_OK, "dim": 768}, False),
    ("embedding", 200, {"ok": True, "model": "all-MiniLM-L6-v2"}, False),
    ("embedding", 503, {"ok": False, "model": "all-MiniLM-L6-v2"}, False),
    ("qdrant", 200, "all shards are ready", True),
    ("qdrant", 503, "some shards are not ready", False),
]


@pytest.mark.parametrize("expect, code, body, good", CASES)
def test_judge(expect: str, code: int, body: object, good: bool) -> None:
    reason = judge(expect, code, body)
    assert (reason == "") is good, reason
    if not good:
        assert reason.strip()


def test_judge_names_what_is_wrong() -> None:
    assert judge("rag", 200, RAG_QDRANT_DOWN) == "qdrant not true"
    assert judge("rag", 200, {"qdrant": False, "embedding": False}) == "qdrant, embedding not true"
    assert "unhealthy_count=1" in judge("litellm", 200, LITELLM_ONE_DOWN)
    assert "503" in judge("llama", 503, LLAMA_LOADING)
    assert "768" in judge("embedding", 200, {**EMB_OK, "dim": 768})


@pytest.mark.parametrize("code, good", [(200, True), (204, True), (301, False), (404, False), (503, False)])
def test_judge_unknown_kind_is_plain_2xx(code: int, good: bool) -> None:
    assert (judge("", code, None) == "") is good
    assert (judge("something-new", code, {"x": 1}) == "") is good


def test_every_expect_label_in_compose_has_an_expectation() -> None:
    seen = set()
    for f in ("docker-compose.yml", "cpu.yml", "gpu.yml"):
        doc = yaml.safe_load((ROOT / "compose" / f).read_text())
        for svc in (doc.get("services") or {}).values():
            e = (svc.get("labels") or {}).get("llmops.expect")
            if e:
                seen.add(e)
    assert seen, "compose files carry llmops.expect labels"
    assert seen <= set(EXPECTATIONS), seen - set(EXPECTATIONS)


def _gateway():
    a = copy.deepcopy(RAG_INSPECT_V1)
    lab = a["Config"]["Labels"]
    lab.update({SERVICE_LABEL: "api-gateway", "llmops.role": "gateway", "llmops.expect": "litellm",
                "llmops.health": "/health/liveliness", "llmops.port": "4000"})
    a["NetworkSettings"]["Ports"] = {"4000/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8000"}]}
    return service_from_attrs(a)


def test_health_request_uses_keyed_gateway_health() -> None:
    gw = _gateway()
    url, headers = health_request(gw, "sk-llmops-abc")
    assert url == "http://127.0.0.1:8000/health"
    assert headers == {"Authorization": "Bearer sk-llmops-abc"}
    url, headers = health_request(gw, None)
    assert url == "http://127.0.0.1:8000/health/liveliness" and headers == {}
    rag = service_from_attrs(RAG_INSPECT_V1)
    assert health_request(rag, "sk-llmops-abc") == ("http://127.0.0.1:8002/health", {})


# ---- parse_completion ---------------------------------------------------------------------------

COMPLETION = {"id": "chatcmpl-QuGWVm4AyQozMf0yzeuyMgNHm7G43mVT", "created": 1795675348, "model": "chat-7b",
              "object": "chat.completion", "system_fingerprint": "b11669-Debian",
              "choices": [{"finish_reason": "length", "index": 0,
                           "message": {"content": "Hello! How can", "role": "assistant"}}],
              "usage": {"completion_tokens": 4, "prompt_tokens": 31, "total_tokens": 35}}


def _resp(code: int, api_base: str | None, model_id: str | None, retries: str, fallbacks: str,
          **kw: object) -> httpx.Response:
    headers = {"x-litellm-call-id": "6ef31827-87dd-4333-bd49-55bbe8d7e310", "x-litellm-version": "1.108.7",
               "x-litellm-model-group": "chat-7b", "x-litellm-attempted-retries": retries,
               "x-litellm-attempted-fallbacks": fallbacks}
    if api_base:
        headers["x-litellm-model-api-base"] = api_base
    if model_id:
        headers["x-litellm-model-id"] = model_id
    return httpx.Response(code, headers=headers,
                          request=httpx.Request("POST", "http://127.0.0.1:8000/v1/chat/completions"), **kw)


def test_parse_completion_served_by_primary() -> None:
    c = parse_completion(_resp(200, "http://inference-chat:8080/v1", "inference-chat", "0", "0",
                               json=COMPLETION), 0.094)
    assert c.status_code == 200
    assert c.backend == "inference-chat"
    assert c.model_id == "inference-chat"
    assert (c.retries, c.fallbacks) == ("0", "0")
    assert c.text == "Hello! How can"
    assert c.completion_tokens == 4
    assert c.error is None
    assert c.latency_s == 0.094


def test_parse_completion_after_failover() -> None:
    c = parse_completion(_resp(200, "http://inference-code:8080/v1", "inference-code", "1", "0",
                               json=COMPLETION), 1.15)
    assert c.backend == "inference-code"
    assert c.retries == "1"


def test_parse_completion_error_keeps_body_and_no_text() -> None:
    body = ('{"error":{"message":"litellm.APIConnectionError: Connection error. Received Model Group=chat-7b",'
            '"type":null,"param":null,"code":"500"}}')
    c = parse_completion(_resp(500, None, None, "1", "0", text=body), 2.01)
    assert c.status_code == 500
    assert c.backend is None and c.model_id is None
    assert c.text is None
    assert c.error == body[:200]


@pytest.mark.parametrize("kw", [{"text": "not json"}, {"json": {"choices": []}}, {"json": {"choices": [{}]}},
                                {"json": ["a", "list"]}])
def test_parse_completion_odd_200_bodies_give_no_text(kw: dict) -> None:
    c = parse_completion(_resp(200, "http://inference-chat:8080/v1", "inference-chat", "0", "0", **kw), 0.1)
    assert c.status_code == 200 and c.text is None and c.error is None and c.completion_tokens is None
    assert c.backend == "inference-chat"


def test_parse_completion_keeps_text_when_usage_is_odd() -> None:
    body = {**COMPLETION, "usage": "n/a"}
    c = parse_completion(_resp(200, "http://inference-chat:8080/v1", "inference-chat", "0", "0", json=body), 0.1)
    assert c.text == "Hello! How can" and c.completion_tokens is None


# ---- checks: 01 status and 03 health ------------------------------------------------------------

DECLARED = ["api-gateway", "embedding", "inference-chat", "inference-code", "qdrant", "rag"]


def _service(name: str, *, state: str = "running", health: str | None = "healthy", host_port: int = 9000):
    a = copy.deepcopy(RAG_INSPECT_V1)
    a["Name"] = f"/llmops_{name}_1"
    a["Config"]["Labels"][SERVICE_LABEL] = name
    a["State"].update({"Status": state, "Paused": state == "paused", "Running": state in ("running", "paused")})
    if health is None:
        del a["State"]["Health"]
    else:
        a["State"]["Health"]["Status"] = health
    a["NetworkSettings"]["Ports"] = {"8002/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(host_port)}]}
    return service_from_attrs(a)


def test_status_all_healthy_passes() -> None:
    svcs = [_service(n, host_port=8000 + i) for i, n in enumerate(DECLARED)]
    r = status_result(DECLARED, svcs, time.perf_counter(), "2026-11-26T06:42:00.000+00:00")
    assert r.status == "pass"
    assert r.metrics == {"services_total": 6, "services_healthy": 6}
    assert r.dod[0].measured == "6/6" and r.dod[0].passed
    assert [row["service"] for row in r.details["services"]] == DECLARED
    row = r.details["services"][0]
    assert row["container"] == "llmops_api-gateway_1"
    assert row["ports"] == "127.0.0.1:8000->8002"
    assert row["uptime_s"] > 0
    assert "6 of 6 services Up (healthy)" in status_text(r)


def test_status_counts_paused_unhealthy_and_missing() -> None:
    svcs = [_service("api-gateway"), _service("embedding", health=None),
            _service("inference-chat", state="paused"), _service("inference-code", health="unhealthy"),
            _service("qdrant", state="exited")]  # rag missing entirely
    r = status_result(DECLARED, svcs, time.perf_counter(), "2026-11-26T06:42:00.000+00:00")
    assert r.status == "fail"
    assert r.metrics == {"services_total": 6, "services_healthy": 2}
    assert r.dod[0].expected == "6/6" and r.dod[0].measured == "2/6" and not r.dod[0].passed
    rows = {row["service"]: row for row in r.details["services"]}
    assert rows["rag"]["state"] == "missing" and rows["rag"]["container"] is None
    assert rows["inference-chat"]["state"] == "paused" and rows["inference-chat"]["uptime_s"] is None
    assert rows["qdrant"]["state"] == "exited"
    text = status_text(r)
    assert "2 of 6 services Up (healthy)" in text
    assert "missing" in text


def test_status_ignores_undeclared_services_and_empty_declared_fails() -> None:
    svcs = [_service("rag"), _service("leftover-sidecar")]
    r = status_result(["rag"], svcs, time.perf_counter(), "t")
    assert r.metrics == {"services_total": 1, "services_healthy": 1} and r.status == "pass"
    r = status_result([], svcs, time.perf_counter(), "t")
    assert r.status == "fail"  # an empty stack proves nothing


def _probe(name: str, latency: float, ok: bool = True, code: int | None = 200) -> ProbeResult:
    return ProbeResult(name, f"http://127.0.0.1:8000/{name}", code, latency, ok,
                       body={"status": "ok"} if ok else "Service Unavailable",
                       reason="" if ok else f"expected 200, got {code}")


def test_health_concurrent_probes_pass() -> None:
    lat = [0.012, 0.034, 0.2, 0.05, 0.009, 0.041]
    probes = [_probe(n, t) for n, t in zip(DECLARED, lat)]
    r = health_result(probes, 0.21, "t")
    assert r.status == "pass"
    m = r.metrics
    assert m["endpoints_total"] == 6 and m["endpoints_ok"] == 6
    assert m["wall_s"] == 0.21
    assert m["sum_latency_s"] == pytest.approx(sum(lat), abs=1e-4)
    assert m["max_latency_s"] == 0.2
    assert m["concurrency_ratio"] == round(sum(lat) / 0.21, 2)
    assert "6 of 6 returned the expected answer" in health_text(r)


@pytest.mark.parametrize("wall, passes", [(0.2, True), (0.3, True), (0.31, False), (0.346, False)])
def test_health_wall_against_1_5x_slowest(wall: float, passes: bool) -> None:
    # slowest 0.2 s: concurrent means wall <= 0.3 s; sequential would be ~0.346 s
    probes = [_probe(n, t) for n, t in zip(DECLARED, [0.012, 0.034, 0.2, 0.05, 0.009, 0.041])]
    r = health_result(probes, wall, "t")
    conc = r.dod[1]
    assert conc.passed is passes
    assert conc.expected == "<= 0.300 s"
    assert conc.measured == f"{wall:.3f} s"
    assert r.status == ("pass" if passes else "fail")


def test_health_one_bad_endpoint_fails_and_counts() -> None:
    probes = [_probe(n, 0.02) for n in DECLARED[:5]] + [_probe("rag", 0.03, ok=False, code=503)]
    r = health_result(probes, 0.031, "t")
    assert r.status == "fail"
    assert r.metrics["endpoints_ok"] == 5 and r.metrics["endpoints_total"] == 6
    assert r.dod[0].measured == "5/6" and not r.dod[0].passed and r.dod[1].passed
    assert "[FAIL] rag" in health_text(r)


def test_health_no_endpoints_fails() -> None:
    r = health_result([], 0.0, "t")
    assert r.status == "fail"
    assert r.metrics["concurrency_ratio"] is None
    assert r.dod[0].measured == "not measured (0 of 1 samples)"


def test_one_probe_claims_no_concurrency() -> None:
    """Why 4 of the verdict issue: "probes run concurrently" was trivially true for
    `verify --service X` (one probe is its own slowest).  With one probe the line is left out."""
    r = health_result([_probe("rag", 0.02)], 0.021, "t")
    assert [c.criterion for c in r.dod] == ["health endpoints answer as specified"]
    assert r.status == "pass"


def test_warmed_is_ok_only_when_every_slot_was_served_by_its_own_deployment() -> None:
    from llmops.warmup import Warmed

    assert Warmed("inference-code", 2, [200, 200], 0.2, ["inference-code"] * 2, None).ok
    # LiteLLM fell back to the other deployment: the standby was not warmed
    assert not Warmed("inference-code", 2, [200, 200], 0.2, ["inference-code", "inference-chat"], None).ok
    assert not Warmed("inference-code", 2, [200, None], 0.2, ["inference-code", None], "ConnectError").ok
    assert not Warmed("inference-code", 0, [], 0.0, [], None).ok
