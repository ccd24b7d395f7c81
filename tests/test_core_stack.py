"""stack.py: Service from real `docker inspect` shapes, time parsing, --service selection,
the services declared by the compose files, and the LiteLLM api-base -> backend mapping."""

from __future__ import annotations

import copy
import datetime as dt
from pathlib import Path

import pytest

from llmops.errors import ConfigError, ExitCode, UsageError
from llmops.compose import declared_services, load_compose_files
from llmops.stack import (PROJECT_LABEL, SERVICE_LABEL, Service, backend_of, check_labels, compose_labels,
                          parse_docker_time, select,
                          service_from_attrs)

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "compose"

# `docker inspect llmops_rag_1` (docker-compose 1.29.2, engine 2x), trimmed to the keys the SDK
# hands service_from_attrs; the health log is cut to one entry.
RAG_INSPECT_V1 = {
    "Id": "58f97e72ca391a7b03b254b764e9ea68caf5372eea4d3525010501617dfab815",
    "Created": "2026-11-26T06:41:05.513208731Z",
    "Path": "python",
    "Args": ["-m", "llmops.services.rag"],
    "Name": "/llmops_rag_1",
    "Image": "sha256:5cdbb3932235b4c636b8073b9ec9deb7e6e24968f9917613e218e301c33f18bc",
    "State": {
        "Status": "running", "Running": True, "Paused": False, "Restarting": False,
        "OOMKilled": False, "Dead": False, "Pid": 26806, "ExitCode": 0, "Error": "",
        "StartedAt": "2026-11-26T06:41:05.931691886Z",
        "FinishedAt": "0001-01-01T00:00:00Z",
        "Health": {
            "Status": "healthy", "FailingStreak": 0,
            "Log": [{"Start": "2026-11-26T06:41:32.95496279Z", "End": "2026-11-26T06:41:33.018969913Z",
                     "ExitCode": 0, "Output": "{\"qdrant\":true,\"embedding\":true,\"status\":\"ok\"}"}],
        },
    },
    "HostConfig": {
        "PortBindings": {"8002/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8002"}]},
        "RestartPolicy": {"Name": "unless-stopped", "MaximumRetryCount": 0},
    },
    "Config": {
        "Hostname": "58f97e72ca39",
        "Image": "llmops/pysvc:latest",
        "ExposedPorts": {"6333/tcp": {}, "8002/tcp": {}},
        "Labels": {
            "com.docker.compose.config-hash": "bdcd8eddb201e9c9193095216a3d3ca311f2ebb2db65d8ee092ad0378eb1df85",
            "com.docker.compose.container-number": "1",
            "com.docker.compose.oneoff": "False",
            "com.docker.compose.project": "llmops",
            "com.docker.compose.project.config_files": "/work/main/compose/docker-compose.yml,/work/main/compose/cpu.yml",
            "com.docker.compose.project.environment_file": "/work/main/compose/.env",
            "com.docker.compose.project.working_dir": "/work/main/compose",
            "com.docker.compose.service": "rag",
            "com.docker.compose.version": "1.29.2",
            "llmops.build-hash": "a2aed329d266d8be",
            "llmops.expect": "rag",
            "llmops.health": "/health",
            "llmops.port": "8002",
            "llmops.role": "rag",
        },
    },
    "NetworkSettings": {
        "Ports": {"6333/tcp": None, "8002/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8002"}]},
    },
}


def v2_shape(attrs: dict) -> dict:
    """The same container as compose v2 names and labels it (`proj-svc-1`, extra v2 labels)."""
    a = copy.deepcopy(attrs)
    a["Name"] = "/llmops-rag-1"
    a["Config"]["Labels"].update({"com.docker.compose.version": "2.29.7",
                                  "com.docker.compose.depends_on": "qdrant:service_healthy:false",
                                  "com.docker.compose.image": a["Image"]})
    return a


def test_running_v1_container_becomes_service() -> None:
    s = service_from_attrs(RAG_INSPECT_V1)
    assert s.name == "rag"
    assert s.role == "rag"
    assert s.container_id == RAG_INSPECT_V1["Id"]
    assert s.container_name == "llmops_rag_1"
    assert (s.state, s.health) == ("running", "healthy")
    assert s.port == 8002 and s.host_port == 8002 and s.host_ip == "127.0.0.1"
    assert s.health_path == "/health"
    assert s.expect == "rag"
    assert s.url == "http://127.0.0.1:8002"
    assert s.up_healthy
    assert s.started_at == "2026-11-26T06:41:05.931691886Z"
    assert s.labels[PROJECT_LABEL] == "llmops"


def test_v1_and_v2_names_give_the_same_service() -> None:
    s1 = service_from_attrs(RAG_INSPECT_V1)
    s2 = service_from_attrs(v2_shape(RAG_INSPECT_V1))
    assert s2.container_name == "llmops-rag-1"
    # Everything the CLI uses is label-derived, so apart from the container name (and the v2-only
    # labels) the two are the same Service.
    for f in ("name", "role", "container_id", "state", "health", "started_at", "health_path",
              "port", "host_port", "host_ip", "url", "expect", "up_healthy"):
        assert getattr(s1, f) == getattr(s2, f), f


def test_paused_container_is_paused_and_not_healthy() -> None:
    a = copy.deepcopy(RAG_INSPECT_V1)
    a["State"].update({"Status": "paused", "Paused": True, "Running": True})
    s = service_from_attrs(a)
    assert s.state == "paused"
    assert s.health == "healthy"  # docker keeps the last health status while paused
    assert not s.up_healthy
    assert s.uptime_s() is None
    # Paused wins over a Status that still says running (older engines report both).
    a["State"]["Status"] = "running"
    assert service_from_attrs(a).state == "paused"


def test_stopped_container_falls_back_to_host_config_port_bindings() -> None:
    a = copy.deepcopy(RAG_INSPECT_V1)
    a["State"].update({"Status": "exited", "Running": False, "Pid": 0, "ExitCode": 137,
                       "FinishedAt": "2026-11-26T07:00:00.5Z"})
    a["State"]["Health"]["Status"] = "unhealthy"
    a["NetworkSettings"]["Ports"] = {}   # what the engine reports for a stopped container
    a["HostConfig"]["PortBindings"] = {"8002/tcp": [{"HostIp": "127.0.0.1", "HostPort": "18002"}]}
    s = service_from_attrs(a)
    assert s.state == "exited"
    assert s.host_port == 18002
    assert not s.up_healthy
    assert s.uptime_s() is None


def test_wildcard_binding_and_container_without_healthcheck() -> None:
    a = copy.deepcopy(RAG_INSPECT_V1)
    del a["State"]["Health"]
    a["NetworkSettings"]["Ports"]["8002/tcp"] = [{"HostIp": "0.0.0.0", "HostPort": "9102"},
                                                 {"HostIp": "::", "HostPort": "9102"}]
    s = service_from_attrs(a)
    assert s.health is None
    assert s.up_healthy                      # running without a healthcheck counts as healthy
    assert (s.host_ip, s.host_port) == ("0.0.0.0", 9102)
    assert s.url == "http://127.0.0.1:9102"  # probes stay on loopback whatever the bind


def test_unpublished_port_gives_no_host_port() -> None:
    a = copy.deepcopy(RAG_INSPECT_V1)
    a["NetworkSettings"]["Ports"] = {"8002/tcp": None}
    a["HostConfig"]["PortBindings"] = {}
    assert service_from_attrs(a).host_port is None


def test_parse_docker_time_keeps_microseconds_of_nanosecond_stamp() -> None:
    t = parse_docker_time("2026-11-26T06:41:05.931691886Z")
    assert t == dt.datetime(2026, 11, 26, 6, 41, 5, 931691, tzinfo=dt.timezone.utc)
    # 8 digits (Go trims trailing zeros of the nanoseconds)
    assert parse_docker_time("2026-11-26T06:41:32.95496279Z").microsecond == 954962
    assert parse_docker_time("2026-11-26T06:41:32Z") == dt.datetime(2026, 11, 26, 6, 41, 32, tzinfo=dt.timezone.utc)


@pytest.mark.parametrize("stamp, micro", [("2026-11-26T07:00:00.5Z", 500000),
                                          ("2026-11-26T07:00:00.12345Z", 123450),
                                          ("2026-11-26T07:00:00.1234Z", 123400)])
def test_parse_docker_time_short_fractions(stamp: str, micro: int) -> None:
    # Go's RFC3339Nano drops trailing zeros, so 1-5 digit fractions are real; Python 3.10's
    # fromisoformat only takes 3 or 6 digits.
    assert parse_docker_time(stamp).microsecond == micro


def test_uptime_from_started_at() -> None:
    s = service_from_attrs(RAG_INSPECT_V1)
    now = dt.datetime(2026, 11, 26, 7, 41, 5, 931691, tzinfo=dt.timezone.utc)
    assert s.uptime_s(now) == pytest.approx(3600.0)
    before = dt.datetime(2026, 11, 26, 6, 0, 0, tzinfo=dt.timezone.utc)
    assert s.uptime_s(before) == 0.0   # clock skew never gives a negative uptime


def _svc(name: str) -> Service:
    a = copy.deepcopy(RAG_INSPECT_V1)
    a["Config"]["Labels"][SERVICE_LABEL] = name
    return service_from_attrs(a)


def test_select_filters_and_rejects_unknown_with_valid_names() -> None:
    valid = declared_services(load_compose_files([COMPOSE / "docker-compose.yml", COMPOSE / "cpu.yml"]))
    svcs = [_svc("rag"), _svc("qdrant"), _svc("embedding")]
    assert select(svcs, None, valid) == svcs
    assert [s.name for s in select(svcs, ["qdrant", "rag"], valid)] == ["rag", "qdrant"]
    with pytest.raises(UsageError) as ei:
        select(svcs, ["rag", "nope", "ragg"], valid)
    msg = str(ei.value)
    assert "nope" in msg and "ragg" in msg
    for n in valid:
        assert n in msg.split("valid:", 1)[1]
    assert ei.value.exit_code == ExitCode.USAGE
    assert "\n" not in msg


def test_declared_services_real_compose_files() -> None:
    names = declared_services(load_compose_files([COMPOSE / "docker-compose.yml", COMPOSE / "cpu.yml"]))
    assert names == sorted(names)
    assert set(names) == {"inference-chat", "inference-code", "api-gateway", "rag", "embedding", "qdrant"}
    gpu = declared_services(load_compose_files([COMPOSE / "docker-compose.yml", COMPOSE / "gpu.yml"]))
    assert gpu == names  # the profile file only overrides


def test_declared_services_union_without_duplicates(tmp_path: Path) -> None:
    a = tmp_path / "a.yml"
    b = tmp_path / "b.yml"
    a.write_text("services:\n  web: {image: x}\n  db: {image: y}\n")
    b.write_text("services:\n  web: {ports: ['1:1']}\n  cache: {image: z}\n")
    assert declared_services(load_compose_files([a, b])) == ["cache", "db", "web"]


def test_declared_services_malformed_yaml_is_config_error(tmp_path: Path) -> None:
    f = tmp_path / "docker-compose.yml"
    f.write_text("services:\n  rag:\n    image: [unclosed\n  qdrant: {}\n")
    with pytest.raises(ConfigError) as ei:
        declared_services(load_compose_files([f]))
    assert "docker-compose.yml" in str(ei.value)
    assert "line " in str(ei.value)
    assert ei.value.exit_code == ExitCode.USAGE


@pytest.mark.parametrize("text", ["services:\n  - rag\n  - qdrant\n", "- just\n- a list\n"])
def test_declared_services_wrong_shape_is_config_error(tmp_path: Path, text: str) -> None:
    f = tmp_path / "cpu.yml"
    f.write_text(text)
    with pytest.raises(ConfigError, match="cpu.yml"):
        declared_services(load_compose_files([f]))


@pytest.mark.parametrize("api_base, backend", [
    ("http://inference-chat:8080/v1", "inference-chat"),
    ("http://inference-code:8080/v1", "inference-code"),
    ("https://Gateway.Example:443", "gateway.example"),
    ("http://127.0.0.1:8001/v1", "127.0.0.1"),
    (None, None),
    ("", None),
    ("inference-chat", None),       # not a URL: no host to name
])
def test_backend_of(api_base: str | None, backend: str | None) -> None:
    assert backend_of(api_base, {}) == backend


# ---- label values are validated where they are read ----------------------------------------------

HOSTILE_HEALTH = "/health'+str(open('/tmp/x','w').write('pwn'))+'"


def _with_label(label: str, value: str) -> dict:
    a = copy.deepcopy(RAG_INSPECT_V1)
    a["Config"]["Labels"][label] = value
    return a


def _refused(label: str, value: str) -> str:
    with pytest.raises(ConfigError) as ei:
        service_from_attrs(_with_label(label, value))
    assert ei.value.exit_code == ExitCode.USAGE
    msg = str(ei.value)
    assert "\n" not in msg
    assert "rag" in msg and label in msg   # names the service and the label
    return msg


@pytest.mark.parametrize("value", [HOSTILE_HEALTH, "health", "/he alth", "/health?x=1", "/a%2e", "/a+b",
                                   "/a(b)", '/a"b', "/" + "a" * 201, "", "/\u00e9"])
def test_hostile_or_malformed_health_label_is_refused(value: str) -> None:
    _refused("llmops.health", value)


@pytest.mark.parametrize("value", ["/health", "/health/liveliness", "/readyz", "/", "/v1/models.json", "/a_b~c-d"])
def test_plain_health_paths_are_accepted(value: str) -> None:
    assert service_from_attrs(_with_label("llmops.health", value)).health_path == value


@pytest.mark.parametrize("value", ["0", "70000", "abc", "-1", "80.0", "８０", " "])
def test_bad_port_label_is_refused(value: str) -> None:
    _refused("llmops.port", value)


def test_unknown_role_label_is_refused() -> None:
    msg = _refused("llmops.role", "inference-tertiary")
    assert "inference-primary" in msg      # says which roles are known


def test_missing_labels_keep_their_defaults() -> None:
    a = copy.deepcopy(RAG_INSPECT_V1)
    for k in ("llmops.health", "llmops.port", "llmops.role"):
        del a["Config"]["Labels"][k]
    s = service_from_attrs(a)
    assert (s.health_path, s.port, s.role) == ("/health", 0, "")


def test_compose_file_labels_are_checked_before_up_in_either_spelling() -> None:
    as_map = {"labels": {"llmops.role": "inference-primary", "llmops.health": HOSTILE_HEALTH}}
    as_list = {"labels": ["llmops.role=inference-primary", f"llmops.health={HOSTILE_HEALTH}"]}
    for svc in (as_map, as_list):
        assert compose_labels(svc)["llmops.health"] == HOSTILE_HEALTH
        with pytest.raises(ConfigError, match="service chat-7b: label llmops.health="):
            check_labels("chat-7b", compose_labels(svc))
    # the shipped compose files pass
    for doc in load_compose_files([COMPOSE / "docker-compose.yml", COMPOSE / "cpu.yml", COMPOSE / "gpu.yml"]):
        for name, svc in (doc.get("services") or {}).items():
            check_labels(name, compose_labels(svc or {}))
