"""The --listen and --target parsers in process (the CLI tests run a few of these as a user would)."""

from __future__ import annotations

import socket

import pytest

from llmops.errors import EnvironmentProblem, UsageError
from llmops.watch.listen import Listen, bind, parse_listen, parse_target
from llmops.watch.loop import handler_for


@pytest.mark.parametrize("value, host, port", [
    ("127.0.0.1:9464", "127.0.0.1", 9464), ("localhost:1", "127.0.0.1", 1), ("[::1]:9464", "::1", 9464),
    ("127.9.9.9:0", "127.9.9.9", 0), (" 127.0.0.1:65535 ", "127.0.0.1", 65535),
])
def test_loopback_addresses(value: str, host: str, port: int) -> None:
    assert parse_listen(value) == Listen(host, port)


@pytest.mark.parametrize("value", ["0.0.0.0:9464", "[::]:9464", "10.0.0.1:9464", "[2001:db8::1]:9464"])
def test_other_addresses_need_the_flag(value: str) -> None:
    with pytest.raises(UsageError, match="--allow-public-listen"):
        parse_listen(value)
    assert parse_listen(value, allow_public=True).port == 9464


@pytest.mark.parametrize("value", ["9464", "127.0.0.1", "127.0.0.1:-1", "127.0.0.1:٣", "host:1", "::1:80", "[::1]:x"])
def test_malformed(value: str) -> None:
    with pytest.raises(UsageError):
        parse_listen(value)


def test_bind_names_the_holder_and_shows_ipv6_in_brackets() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(EnvironmentProblem, match=rf"port {port} is already taken by \S+ \(pid \d+\)"):
            bind(Listen("127.0.0.1", port), handler_for(lambda: b""))
    assert Listen("::1", 9).shown() == "[::1]:9" and Listen("127.0.0.1", 9).shown(10) == "127.0.0.1:10"


def test_bind_an_address_not_here() -> None:
    with pytest.raises(EnvironmentProblem, match="not an address of this machine"):
        bind(Listen("192.0.2.55", 0), handler_for(lambda: b""))


def test_targets() -> None:
    t = parse_target("inference-chat:inference-primary=http://localhost:8001")
    assert (t.name, t.role, t.base_url, t.health_path, t.expect) == \
        ("inference-chat", "inference-primary", "http://127.0.0.1:8001", "/health", "llama")
    assert parse_target("q:vectordb=http://127.0.0.1:6333/").health_path == "/readyz"
    assert parse_target("g:gateway=http://[::1]:4000/healthz").base_url == "http://[::1]:4000"
    assert parse_target("g:gateway=http://[::1]:4000/healthz").health_path == "/healthz"
    for bad in ("x:rag=http://127.0.0.1:99999", "x:rag=ftp://127.0.0.1:1", ":rag=http://127.0.0.1:1"):
        with pytest.raises(UsageError):
            parse_target(bad)
