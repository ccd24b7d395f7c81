"""A stack llmops did not write: the rules that replaced the demo's hidden assumptions (pure)."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmops.compose import ADOPT_FILE, DEFAULT_PROJECT, find_layout, project_name
from llmops.errors import ConfigError
from llmops.gateway_config import (GatewayConfig, config_argument, gateway_master_key, host_path_of,
                                   master_key_variable, mounted_config_path)
from llmops.report.summary import scenario_for
from llmops.stack import Service, Stack, backend_of, host_map

ROOT = Path(__file__).resolve().parents[1]


def write(p: Path, text: str = "services:\n  a:\n    image: x\n") -> Path:
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    return p


# ---- 1 and 6: which compose files, which project name --------------------------------------------

def test_compose_default_names_and_override(tmp_path: Path) -> None:
    d = tmp_path / "My Stack"
    write(d / "compose.yaml")
    write(d / "compose.override.yaml")
    lay = find_layout(d, "cpu", environ={})
    assert [f.name for f in lay.files] == ["compose.yaml", "compose.override.yaml"] and not lay.demo
    assert project_name(None, lay, environ={}) == "mystack"        # compose's rule: the folder, lower-cased


def test_docker_compose_yml_when_no_compose_yaml(tmp_path: Path) -> None:
    write(tmp_path / "docker-compose.yaml")
    assert [f.name for f in find_layout(tmp_path, "cpu", environ={}).files] == ["docker-compose.yaml"]


def test_compose_file_variable_and_explicit_files(tmp_path: Path) -> None:
    write(tmp_path / "a.yml")
    write(tmp_path / "b.yml")
    lay = find_layout(tmp_path, "cpu", environ={"COMPOSE_FILE": "a.yml:b.yml"})
    assert [f.name for f in lay.files] == ["a.yml", "b.yml"]
    assert [f.name for f in find_layout(tmp_path, "cpu", (Path("b.yml"),), environ={}).files] == ["b.yml"]
    with pytest.raises(ConfigError, match="compose file missing: .*nope.yml"):
        find_layout(tmp_path, "cpu", (Path("nope.yml"),), environ={})


def test_no_compose_file_names_what_was_looked_for(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="compose.yaml.*--compose-file"):
        find_layout(tmp_path, "cpu", environ={})


def test_adopt_override_is_included_last(tmp_path: Path) -> None:
    write(tmp_path / "compose.yaml")
    write(tmp_path / ADOPT_FILE)
    assert find_layout(tmp_path, "cpu", environ={}).files[-1].name == ADOPT_FILE


def test_the_demo_layout_keeps_its_files_and_name() -> None:
    lay = find_layout(ROOT, "cpu", environ={})
    assert lay.demo and [f.name for f in lay.files][:2] == ["docker-compose.yml", "cpu.yml"]
    assert project_name(None, lay, environ={}) == DEFAULT_PROJECT


def test_project_name_precedence(tmp_path: Path) -> None:
    write(tmp_path / "compose.yaml", "name: from-file\nservices:\n  a:\n    image: x\n")
    lay = find_layout(tmp_path, "cpu", environ={})
    assert project_name(None, lay, environ={}) == "from-file"
    write(tmp_path / ".env", "COMPOSE_PROJECT_NAME=from-env-file\n")
    assert project_name(None, lay, environ={}) == "from-env-file"
    assert project_name(None, lay, environ={"COMPOSE_PROJECT_NAME": "from-environ"}) == "from-environ"
    assert project_name("given", lay, environ={"COMPOSE_PROJECT_NAME": "from-environ"}) == "given"
    with pytest.raises(ConfigError, match="project name 'Bad Name'"):
        project_name("Bad Name", lay, environ={})


# ---- 3 and 5: the gateway's config and key, as the running container has them --------------------

def test_config_argument_forms() -> None:
    assert config_argument(["litellm", "--config", "/app/config.yaml"]) == "/app/config.yaml"
    assert config_argument(["--config=/x.yaml"]) == "/x.yaml"
    assert config_argument(["litellm"], {"CONFIG_FILE_PATH": "/e.yaml"}) == "/e.yaml"
    assert config_argument(["litellm"]) is None


def test_host_path_through_mounts_deepest_wins() -> None:
    mounts = [("/srv", "/app"), ("/srv/cfg.yaml", "/app/config.yaml")]
    assert host_path_of("/app/config.yaml", mounts) == Path("/srv/cfg.yaml")
    assert host_path_of("/app/other.yaml", mounts) == Path("/srv/other.yaml")
    assert host_path_of("/etc/litellm/config.yaml", mounts) is None


def test_mounted_config_follows_the_gateway_command() -> None:
    attrs = {"Config": {"Cmd": ["--config", "/app/config.yaml", "--port", "4100"], "Env": []},
             "Mounts": [{"Source": "/home/u/litellm.yaml", "Destination": "/app/config.yaml"}]}
    assert mounted_config_path(attrs) == Path("/home/u/litellm.yaml")


def test_master_key_through_the_variable_the_config_names() -> None:
    cfg = GatewayConfig.parse({"model_list": [], "general_settings": {"master_key": "os.environ/PROXY_KEY"}})
    attrs = {"Config": {"Env": ["PROXY_KEY=sk-theirs", "LITELLM_MASTER_KEY=sk-other"]}}
    assert master_key_variable(cfg) == "PROXY_KEY" and gateway_master_key(attrs, cfg) == "sk-theirs"
    plain = GatewayConfig.parse({"model_list": []})
    assert master_key_variable(plain) == "LITELLM_MASTER_KEY" and gateway_master_key(attrs, plain) == "sk-other"
    literal = GatewayConfig.parse({"model_list": [], "general_settings": {"master_key": "sk-written"}})
    assert master_key_variable(literal) is None and gateway_master_key(attrs, literal) == "sk-written"


# ---- 2 and 4: an api_base host that is an alias of a service --------------------------------------

def _svc(name: str, aliases: list[str], hostname: str = "") -> Service:
    return Service(name, "", "id", f"p-{name}-1", "running", "healthy", None, "/health", 8080, 1,
                   attrs={"Config": {"Hostname": hostname},
                          "NetworkSettings": {"Networks": {"n": {"Aliases": aliases}}}})


def test_api_base_hosts_map_to_services_through_dns_names() -> None:
    hosts = host_map([_svc("llm-main", ["primary.llm"]), _svc("llm-backup", [], hostname="backup-host")])
    assert backend_of("http://primary.llm:9000/v1", hosts) == "llm-main"
    assert backend_of("http://backup-host:9000/v1", hosts) == "llm-backup"
    assert backend_of("http://llm-main:9000/v1", hosts) == "llm-main"
    assert backend_of("http://elsewhere:9000/v1", hosts) == "elsewhere"


def test_a_stack_snapshot_names_its_own_hosts_first_registration_wins() -> None:
    # "shared" is an alias of both; "llm-b" is also an alias of llm-a, but a service's own name is itself
    st = Stack("p", ["llm-a", "llm-b"], [_svc("llm-a", ["shared", "llm-b"]), _svc("llm-b", ["shared"])])
    assert st.backend_of("http://shared:9000/v1") == "llm-a"
    assert st.backend_of("http://llm-b:9000/v1") == "llm-b"
    assert st.backend_of("http://p-llm-b-1:9000/v1") == "llm-b"       # its container name
    assert st.backend_of("http://elsewhere:9000/v1") == "elsewhere"
    assert st.backend_of(None) is None
    assert dict(st.hosts) == host_map(st.services)
    # nothing is left behind for the next snapshot: another stack knows none of these aliases
    assert Stack("q", [], []).backend_of("http://shared:9000/v1") == "shared"


def test_the_router_summary_finds_a_deployment_through_the_stacks_hosts() -> None:
    from llmops.gateway_config import RouterSummary
    from llmops.gateway_config.router import PublicDeployment

    deps = [PublicDeployment("main", "http://primary.llm:9000/v1", timeout=2, stream_timeout=1)]
    assert RouterSummary("c.yaml", {}, deps, []).timeout_s("llm-main") is None
    r = RouterSummary("c.yaml", {}, deps, [], hosts={"primary.llm": "llm-main"})
    assert r.timeout_s("llm-main") == 2.0 and r.stream_timeout_s("llm-main") == 1.0
    assert "hosts" not in r.to_json()


def test_running_router_reads_the_mounted_config_with_its_drift(tmp_path: Path) -> None:
    from llmops.gateway_config import running_router

    cfg = tmp_path / "config.yaml"
    cfg.write_text((ROOT / "compose" / "litellm" / "config.yaml").read_text())
    attrs = {"Config": {"Cmd": ["--config", "/etc/litellm/config.yaml"], "Env": []},
             "Mounts": [{"Source": str(cfg), "Destination": "/etc/litellm/config.yaml"}],
             "State": {"StartedAt": "2000-01-01T00:00:00Z"}}
    r = running_router(attrs)
    assert r is not None and r.path == str(cfg) and len(r.deployments) == 2
    assert r.drift and "modified after the gateway started" in r.drift and r.drift not in r.warnings
    labels = {"com.docker.compose.service": "gw", "llmops.role": "gateway"}
    st = Stack("p", ["gw"], [Service("gw", "gateway", "id", "p-gw-1", "running", None, None, "/health", 4000, 1,
                                     labels=labels, attrs=attrs)])
    assert st.router is not None and st.router.warnings[0] == r.drift      # the stack leads with it
    assert running_router({**attrs, "Mounts": []}) is None


# ---- 8: the report's words come from the run, not the demo ---------------------------------------

def test_scenarios_name_this_stack() -> None:
    text = scenario_for("failover", {"target": "llm-main", "secondary": "llm-backup"})
    assert "(llm-main)" in text and "(llm-backup)" in text and "inference-chat" not in text
    assert "alias assistant" in scenario_for("functional", {"alias": "assistant"})
    assert "unknown alias" in scenario_for("functional", {})


# ---- messages that name the fix (never the command just run) --------------------------------------

def test_a_missing_role_names_the_unlabelled_services_and_adopt() -> None:
    from llmops.errors import EnvironmentProblem
    from llmops.stack import Stack

    st = Stack("mine", ["llm-main", "litellm"], [_svc("llm-main", []), _svc("litellm", [])])
    with pytest.raises(EnvironmentProblem) as e:
        st.require("gateway")
    assert "llm-main, litellm" in str(e.value) and "llmops adopt" in str(e.value) and "llmops up" not in str(e.value)
    with pytest.raises(EnvironmentProblem, match="is not up.*run `llmops up`"):
        Stack("mine", ["a"], []).require("gateway")


def test_a_running_service_without_a_port_label_says_so() -> None:
    from llmops.errors import EnvironmentProblem
    from llmops.probes import no_port_reason

    s = _svc("llm-main", [])
    s.port, s.host_port = 0, None
    assert "llmops.port label" in no_port_reason(s) and "llmops adopt" in no_port_reason(s)
    with pytest.raises(EnvironmentProblem, match="llm-main has no host port.*llmops adopt"):
        _ = s.url
    s.port = 9000
    assert "9000" in no_port_reason(s) and "not published" in no_port_reason(s)


# ---- 9: gpu-plan plans the running stack's servers, by service name --------------------------------

def test_gpu_plan_specs_from_running_services(tmp_path: Path) -> None:
    from llmops.gpu.plan import spec_from_args, specs_from_services

    mounted = _svc("llm-main", [])
    mounted.role = "inference-primary"
    mounted.attrs.update({"Config": {"Entrypoint": ["/app/llama-server"], "Cmd": ["-m", "/models/m.gguf", "-c", "4096"],
                                     "Env": ["LLAMA_ARG_N_GPU_LAYERS=99"]},
                          "Mounts": [{"Source": str(tmp_path), "Destination": "/models"}]})
    baked = _svc("llm-backup", [])
    baked.role = "inference-secondary"
    baked.attrs.update({"Config": {"Cmd": ["llama-server", "-m", "/models/in-image.gguf"]}, "Mounts": []})
    specs = specs_from_services([mounted, baked])
    assert [(s.name, s.model_path, s.argv[:2]) for s in specs] == [("llm-main", tmp_path / "m.gguf", ["-m", "/models/m.gguf"])]
    assert specs[0].env == {"LLAMA_ARG_N_GPU_LAYERS": "99"}
    assert spec_from_args("llm-main=-m /x.gguf -c 512", 0).name == "llm-main"
    assert spec_from_args("-m /x.gguf", 1).name == "server-2"


def test_published_host_ports_do_not_need_labels() -> None:
    s = _svc("litellm", [])
    s.attrs["NetworkSettings"]["Ports"] = {"4100/tcp": [{"HostIp": "127.0.0.1", "HostPort": "28100"}], "9/udp": None}
    assert s.published_host_ports == {28100}
