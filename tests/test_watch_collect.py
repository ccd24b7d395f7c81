"""`llmops watch`'s probes against real local HTTP servers (tests/watch_standins.py): what one
round reads, that a hung service costs only its own probe's timeout, and that the gateway's key
is sent but never shown."""

from __future__ import annotations

import asyncio
import threading
import time
import urllib.request

import httpx
import pytest

from llmops.watch.collect import HttpProbes, parse_llama_metrics, throughput
from llmops.watch.listen import Listen, bind, parse_target
from llmops.watch.loop import Watcher, handler_for, serve
from llmops.watch.metrics import exposition
from llmops.watch.readings import Snapshot
from llmops.watch.sources import ContainerState, StaticSource, is_stale, states_from_rows
from llmops.watch.targets import WatchPlan, plan_from_specs
from watch_standins import LLAMA_METRICS, Stack, llama

ROLES = {"api-gateway": "gateway", "inference-chat": "inference-primary", "inference-code": "inference-secondary",
         "embedding": "embedding", "rag": "rag", "qdrant": "vectordb"}


@pytest.fixture
def standins():
    s = Stack()
    yield s
    s.close()


def plan_of(s: Stack, key: str | None = Stack.KEY) -> WatchPlan:
    specs = [parse_target(f"{x.name}:{ROLES[x.name]}={x.url}") for x in s.all]
    return plan_from_specs(specs, "chat-7b", key)


def one_round(w: Watcher) -> tuple[Snapshot, list[str], float]:
    async def go():
        async with httpx.AsyncClient(trust_env=False) as c:
            t = time.monotonic()
            snap, events = await w.round(HttpProbes(c))
            return snap, events, time.monotonic() - t
    return asyncio.run(go())


def rounds(w: Watcher, n: int) -> list[Snapshot]:
    """n rounds in one loop, on one client (as `watch` runs them)."""
    async def go():
        out = []
        async with httpx.AsyncClient(trust_env=False) as c:
            p = HttpProbes(c)
            for _ in range(n):
                out.append((await w.round(p))[0])
        return out
    return asyncio.run(go())


def test_one_round_reads_every_service(standins: Stack) -> None:
    snap, events, _ = one_round(Watcher(StaticSource(plan_of(standins)), 5.0))
    assert events == []
    assert {h.service: h.up for h in snap.health} == {n: True for n in ROLES}
    llama_r = {r.service: dict(r.values) for r in snap.llama}
    assert set(llama_r) == {"inference-chat", "inference-code", "embedding"}
    chat = llama_r["inference-chat"]
    assert chat["llmops_llama_requests_processing"] == 0
    # the probe's completion came after the /metrics read or before it: 100 or 112 prompt tokens
    assert chat["llmops_llama_prompt_tokens_total"] in (100, 112)
    # one reading is no rate: the throughput needs two
    assert "llmops_llama_predicted_tokens_per_second" not in chat
    g = snap.gateway
    assert g is not None and g.ok and g.backend == "inference-chat" and snap.gateway_backend == "inference-chat"
    assert not snap.on_secondary
    assert snap.vectordb is not None and snap.vectordb.ready and snap.vectordb.points == 13
    # exactly one completion through the gateway per round
    posts = [r for r in standins.gateway.requests if r[0] == "POST"]
    assert len(posts) == 1 and posts[0][2]["Authorization"] == f"Bearer {Stack.KEY}"


def test_the_gateway_probe_is_one_request_per_round(standins: Stack) -> None:
    rounds(Watcher(StaticSource(plan_of(standins)), 5.0), 4)
    posts = [r for r in standins.gateway.requests if r[0] == "POST"]
    gets = [r for r in standins.gateway.requests if r[0] == "GET"]
    assert len(posts) == 4 and len(gets) == 4 and all(r[1] == "/health/liveliness" for r in gets)


def test_failover_and_failback_through_a_gateway_that_really_forwards(standins: Stack) -> None:
    w = Watcher(StaticSource(plan_of(standins)), 5.0)
    s1, = rounds(w, 1)
    standins.chat.stop()
    s2, ev2, _ = one_round(w)
    standins.chat.start()
    s3, ev3, _ = one_round(w)
    assert (s1.on_secondary, s2.on_secondary, s3.on_secondary) == (False, True, False)
    assert (s3.failovers, s3.failbacks) == (1, 1)
    assert "gateway failover: served by inference-code" in ev2
    assert any(e.startswith("inference-chat down: ConnectError") for e in ev2)
    assert "inference-chat up" in ev3 and "gateway failback: served by inference-chat" in ev3
    text = exposition(s2).decode()
    assert "llmops_gateway_on_secondary 1.0" in text
    assert 'llmops_service_up{role="inference-primary",service="inference-chat"} 0.0' in text
    assert 'llmops_gateway_backend_info{role="inference-secondary",service="inference-code"} 1.0' in text


def test_a_hung_service_costs_its_own_probe_and_never_the_round(standins: Stack) -> None:
    standins.rag.hang = True        # reads the request, never answers
    standins.embedding.hang = True
    w = Watcher(StaticSource(plan_of(standins)), 1.0)
    snap, events, took = one_round(w)
    assert took < 1.0, f"the round took {took:.2f} s with a 1 s interval"
    h = {x.service: x for x in snap.health}
    assert not h["rag"].up and h["rag"].reason.startswith("no answer within 0.8")
    assert not h["embedding"].up
    assert h["inference-chat"].up and h["qdrant"].up and snap.gateway is not None and snap.gateway.ok
    assert {r.service: r.available for r in snap.llama}["embedding"] is False


def test_a_hung_gateway_is_bounded_too(standins: Stack) -> None:
    standins.gateway.hang = True
    snap, _events, took = one_round(Watcher(StaticSource(plan_of(standins)), 1.0))
    assert took < 1.0
    assert snap.gateway is not None and not snap.gateway.ok and "no answer within" in snap.gateway.reason
    assert snap.gateway_failures == 1 and snap.gateway_backend is None


def test_the_loop_keeps_its_schedule_with_a_hung_service(standins: Stack) -> None:
    standins.qdrant.hang = True
    w = Watcher(StaticSource(plan_of(standins)), 1.0)
    seen: list[float] = []
    t0 = time.monotonic()
    serve(w, None, lambda s, _e: seen.append(time.monotonic() - t0), rounds=4)
    assert w.rounds == 4 and w.overruns == 0
    assert 2.8 < seen[-1] < 4.0, seen          # rounds at 0, 1, 2, 3 s (each ends within 0.8 s)
    assert w.latest is not None and dict((s, n) for s, n, _f in w.latest.health_probes)["qdrant"] == 4


def test_the_server_serves_the_latest_round_while_the_loop_runs(standins: Stack) -> None:
    w = Watcher(StaticSource(plan_of(standins)), 0.5)
    server = bind(Listen("127.0.0.1", 0), handler_for(lambda: exposition(w.latest) if w.latest else b""))
    port = server.server_address[1]
    bodies: list[str] = []

    def scrape(_s: Snapshot, _e: list[str]) -> None:
        if w.rounds == 2:
            threading.Thread(target=lambda: bodies.append(
                urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode())).start()

    serve(w, server, scrape, rounds=4)
    assert bodies and "llmops_watch_cycles_total" in bodies[0]
    with pytest.raises(OSError):     # closed on the way out: the port is free again
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1)


def test_the_key_is_sent_but_never_shown(standins: Stack) -> None:
    wrong = "sk-wrong-" + "z9" * 12
    snap, _e, _t = one_round(Watcher(StaticSource(plan_of(standins, key=wrong)), 5.0))
    g = snap.gateway
    assert g is not None and not g.ok and g.reason.startswith("HTTP 401")
    assert wrong not in g.reason
    snap, _e, _t = one_round(Watcher(StaticSource(plan_of(standins)), 5.0))
    assert Stack.KEY not in exposition(snap).decode() and Stack.KEY not in repr(snap)


def test_no_key_and_no_alias_say_so_without_a_request(standins: Stack) -> None:
    snap, _e, _t = one_round(Watcher(StaticSource(plan_of(standins, key=None)), 5.0))
    assert snap.gateway is not None and snap.gateway.reason == "no master key to send"
    assert not [r for r in standins.gateway.requests if r[0] == "POST"]


def test_a_llama_server_without_metrics_has_no_series() -> None:
    s = llama("inference-chat", metrics=False)
    try:
        plan = plan_from_specs([parse_target(f"inference-chat:inference-primary={s.url}")], None, None)
        snap, _e, _t = one_round(Watcher(StaticSource(plan), 5.0))
    finally:
        s.stop()
    assert [(r.available, r.values) for r in snap.llama] == [(False, ())]
    text = exposition(snap).decode()
    assert 'llmops_llama_metrics_up{role="inference-primary",service="inference-chat"} 0.0' in text
    assert "llmops_llama_requests_processing" not in text


def test_throughput_comes_from_the_counters_between_rounds(standins: Stack) -> None:
    w = Watcher(StaticSource(plan_of(standins)), 5.0)
    rates: dict[str, float] = {}
    for snap in rounds(w, 6):       # the probe's completion lands before or after the read: wait for one between
        rates = dict(next(r for r in snap.llama if r.service == "inference-chat").values)
        if "llmops_llama_predicted_tokens_per_second" in rates:
            break
    assert rates["llmops_llama_prompt_tokens_per_second"] == pytest.approx(120.0)
    assert rates["llmops_llama_predicted_tokens_per_second"] == pytest.approx(80.0)
    # the secondary served nothing: no rate, rather than a made-up 0
    code = dict(next(r for r in snap.llama if r.service == "inference-code").values)
    assert "llmops_llama_predicted_tokens_per_second" not in code and "llmops_llama_predicted_tokens_total" in code


def test_throughput_guards() -> None:
    before = {"llmops_llama_predicted_tokens_total": 40, "llmops_llama_predicted_seconds_total": 2.0,
              "llmops_llama_prompt_tokens_total": 100, "llmops_llama_prompt_seconds_total": 1.0}
    one_token = {**before, "llmops_llama_predicted_tokens_total": 41, "llmops_llama_predicted_seconds_total": 2.000001}
    assert throughput(before, one_token) == {}            # the probe's token: no 10^6 tokens/s
    restarted = {k: v / 10 for k, v in before.items()}
    assert throughput(before, restarted) == {} and throughput(None, before) == {}
    busy = {**before, "llmops_llama_prompt_tokens_total": 130, "llmops_llama_prompt_seconds_total": 1.25}
    assert throughput(before, busy) == {"llmops_llama_prompt_tokens_per_second": 120.0}


def test_parse_llama_metrics() -> None:
    got = dict(parse_llama_metrics(LLAMA_METRICS.format(prompt=7, prompt_s=1.5, predicted=3, predicted_s=2.25,
                                                        processing=2)))
    # llama-server's own throughput gauges are not taken: each /metrics read resets them
    assert got == {"llmops_llama_prompt_tokens_total": 7, "llmops_llama_prompt_seconds_total": 1.5,
                   "llmops_llama_predicted_tokens_total": 3, "llmops_llama_predicted_seconds_total": 2.25,
                   "llmops_llama_requests_processing": 2, "llmops_llama_requests_deferred": 0}
    odd = "llamacpp:requests_deferred{slot=\"0\"} 4\nllamacpp:requests_processing NaN\nllamacpp:prompt_tokens_total x\n" \
          "garbage\n\nllamacpp:unknown 1\n"
    assert parse_llama_metrics(odd) == (("llmops_llama_requests_deferred", 4.0),)


def test_a_stopped_container_is_not_probed() -> None:
    s = llama("inference-chat")

    class Src(StaticSource):
        def states(self):
            return {"inference-chat": ContainerState("c1", False, True)}

    try:
        plan = plan_from_specs([parse_target(f"inference-chat:inference-primary={s.url}")], None, None)
        snap, events, _t = one_round(Watcher(Src(plan), 5.0))
    finally:
        s.stop()
    h, = snap.health
    assert (h.up, h.running, h.reason, h.latency_s) == (False, False, "container is not running", None)
    assert s.requests == []


def _row(service: str, cid: str, state: str, role: str = "inference-primary", oneoff: str = "False") -> dict:
    labels = {"com.docker.compose.project": "p", "com.docker.compose.service": service,
              "com.docker.compose.oneoff": oneoff}
    if role:
        labels["llmops.role"] = role
    return {"Id": cid, "Labels": labels, "State": state, "Status": "Up 3 minutes (healthy)"}


def test_states_from_engine_rows_and_when_to_read_the_stack_again() -> None:
    rows = [_row("inference-chat", "a" * 64, "exited"), _row("inference-chat", "b" * 64, "running"),
            _row("rag", "c" * 64, "running", role="rag"), _row("inference-chat", "d" * 64, "running", oneoff="True"),
            _row("prometheus", "e" * 64, "running", role="")]
    st = states_from_rows(rows)
    assert st["inference-chat"] == ContainerState("b" * 64, True, True)
    assert set(st) == {"inference-chat", "rag", "prometheus"}
    from llmops.watch.targets import Target

    plan = WatchPlan("p", (Target("inference-chat", "inference-primary", "http://127.0.0.1:1", "/health", "llama", "b" * 64),
                           Target("rag", "rag", "http://127.0.0.1:2", "/health", "rag", "c" * 64)))
    assert not is_stale(plan, st)                               # an unlabelled newcomer is no reason
    assert is_stale(plan, {**st, "rag": ContainerState("f" * 64, True, True)})          # recreated
    assert is_stale(plan, {**st, "embedding": ContainerState("g" * 64, True, True)})    # a new service
    stopped = WatchPlan("p", (Target("rag", "rag", None, "/health", "rag", "c" * 64, "container is exited"),))
    assert is_stale(stopped, st)                                # back, maybe on a new port


def test_a_plan_from_a_stack_snapshot_probes_the_gateway_unkeyed() -> None:
    """The gateway's health is its label path without the key: the keyed /health would make
    LiteLLM send each deployment a completion (three requests per round, not one)."""
    from llmops.stack import Stack as DockerStack
    from llmops.stack import service_from_attrs
    from llmops.watch.targets import plan_from_stack

    def attrs(name: str, role: str, port: str, health: str, expect: str, host_port: str | None) -> dict:
        return {"Id": name * 4, "Name": f"/p-{name}-1",
                "Config": {"Labels": {"com.docker.compose.service": name, "llmops.role": role, "llmops.port": port,
                                      "llmops.health": health, "llmops.expect": expect,
                                      "llmops.model-alias": "chat-7b"}},
                "State": {"Status": "running" if host_port else "exited"},
                "NetworkSettings": {"Ports": {f"{port}/tcp": [{"HostIp": "127.0.0.1", "HostPort": host_port}] if host_port else None}}}

    services = [service_from_attrs(attrs("api-gateway", "gateway", "4000", "/health/liveliness", "litellm", "8000")),
                service_from_attrs(attrs("inference-chat", "inference-primary", "8080", "/health", "llama", None))]
    plan = plan_from_stack(DockerStack("p", ["api-gateway", "inference-chat"], services), "sk-x")
    gw, chat = plan.targets
    assert (gw.health_url, gw.expect) == ("http://127.0.0.1:8000/health/liveliness", "")
    assert chat.base_url is None and chat.unreachable == "container is exited"
    assert plan.alias == "chat-7b" and plan.primary == "inference-chat"


def test_docker_states_drive_up_and_the_stack_is_read_once(standins: Stack) -> None:
    """DockerSource with an engine that answers as Docker's does (a Stack of inspect-shaped
    services; `GET /containers/json` rows): a container gone is down without a probe, and the
    stack is not read again for a restart of the same container."""
    from types import SimpleNamespace

    from llmops.stack import Stack as DockerStack
    from llmops.stack import service_from_attrs
    from llmops.watch.sources import DockerSource

    ids = {x.name: f"{i:064x}" for i, x in enumerate(standins.all)}
    health = {"api-gateway": "/health/liveliness", "qdrant": "/readyz"}
    expect = {"api-gateway": "litellm", "rag": "rag", "qdrant": "qdrant"}
    chat_state = ["running"]
    reads = []

    def attrs(x) -> dict:
        lab = {"com.docker.compose.service": x.name, "llmops.role": ROLES[x.name], "llmops.port": "80",
               "llmops.health": health.get(x.name, "/health"), "llmops.expect": expect.get(x.name, "llama"),
               "llmops.model-alias": "chat-7b"}
        return {"Id": ids[x.name], "Name": f"/p-{x.name}-1", "Config": {"Labels": lab}, "State": {"Status": "running"},
                "NetworkSettings": {"Ports": {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(x.port)}]}}}

    def snapshot(refresh: bool = False) -> DockerStack:
        reads.append(refresh)
        return DockerStack("p", list(ids), [service_from_attrs(attrs(x)) for x in standins.all])

    rows = lambda all, filters: [{"Id": ids[x.name], "State": chat_state[0] if x.name == "inference-chat" else "running",  # noqa: E731
                                  "Labels": {"com.docker.compose.service": x.name, "llmops.role": ROLES[x.name]}}
                                 for x in standins.all]
    ctx = SimpleNamespace(project="p", master_key=Stack.KEY, stack=snapshot,
                          client=SimpleNamespace(api=SimpleNamespace(containers=rows)))
    w = Watcher(DockerSource(ctx), 5.0)   # type: ignore[arg-type]
    s1, = rounds(w, 1)
    chat_state[0] = "exited"
    standins.chat.stop()
    s2, ev2, _ = one_round(w)
    chat_state[0] = "running"
    standins.chat.start()
    s3, ev3, _ = one_round(w)
    up = [{h.service: h.up for h in s.health}["inference-chat"] for s in (s1, s2, s3)]
    assert up == [True, False, True]
    assert "inference-chat down: container is not running" in ev2 and "gateway failover: served by inference-code" in ev2
    assert (s3.failovers, s3.failbacks) == (1, 1) and reads == [True]
