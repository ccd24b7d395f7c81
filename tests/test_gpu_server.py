"""One `ModelServer` for every reader: the running stack's containers (docker inspect shapes and
their logs), a compose value's `${VAR}`, the plan's table as plain text, and the runtime
package never importing the test stand-ins."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from llmops.compose import interpolate
from llmops.errors import ConfigError
from llmops.gpu.plan import PLAN_COLUMNS, plan_servers, plan_table, spec_from_args
from llmops.gpu.server import ModelServer, servers_from_stack
from llmops.stack import Stack, service_from_attrs
from llmops.testing.gguf_shapes import LLAMA_SHAPES, write_sparse_gguf

SRC = Path(__file__).resolve().parent.parent / "src" / "llmops"


def _attrs(name: str, role: str, cid: str, *, model: str | None, mounts: list[dict], cmd: list[str],
           env: list[str] | None = None) -> dict:
    labels = {"com.docker.compose.service": name, "llmops.role": role, "llmops.port": "8080"}
    if model:
        labels["llmops.model"] = model
    return {"Id": cid, "Name": f"/p-{name}-1", "State": {"Status": "running"},
            "Config": {"Labels": labels, "Entrypoint": ["/app/llama-server"], "Cmd": cmd, "Env": env or []},
            "Mounts": mounts}


class _Containers:
    def __init__(self, logs: dict[str, bytes]) -> None:
        self.logs = logs

    def get(self, cid: str):
        if cid not in self.logs:
            raise RuntimeError("no such container")
        text = self.logs[cid]

        class C:
            def logs(self, tail: str) -> bytes:
                assert tail == "all"          # the buffer lines come at load, before any request
                return text
        return C()


class _Client:
    def __init__(self, logs: dict[str, bytes]) -> None:
        self.containers = _Containers(logs)


def test_service_argv_env_and_host_path() -> None:
    s = service_from_attrs(_attrs("chat", "inference-primary", "c1", model="/models/m.gguf", cmd=["-m", "/models/m.gguf"],
                                  env=["LLAMA_ARG_CTX_SIZE=4096", "NOVALUE"],
                                  mounts=[{"Source": "/srv", "Destination": "/models"},
                                          {"Source": "/srv/deep", "Destination": "/models/sub"}]))
    assert s.argv == ["/app/llama-server", "-m", "/models/m.gguf"]
    assert s.env == {"LLAMA_ARG_CTX_SIZE": "4096"}
    assert s.host_path("/models/m.gguf") == Path("/srv/m.gguf")
    assert s.host_path("/models/sub/x.gguf") == Path("/srv/deep/x.gguf")     # the deepest mount wins
    assert s.host_path("/elsewhere/x.gguf") is None


def test_servers_from_stack_reads_mounts_logs_and_the_build_cache(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("LLMOPS_CACHE", str(tmp_path / "cache"))
    (tmp_path / "cache" / "models").mkdir(parents=True)
    (tmp_path / "cache" / "models" / "baked.gguf").write_bytes(b"GGUF")
    mounted = _attrs("chat", "inference-primary", "c1", model="/models/m.gguf", cmd=["-m", "/models/m.gguf"],
                     env=["LLAMA_ARG_N_GPU_LAYERS=99"], mounts=[{"Source": "/srv", "Destination": "/models"}])
    baked = _attrs("code", "inference-secondary", "c2", model="/models/baked.gguf", cmd=["-m", "/models/baked.gguf"],
                   mounts=[])
    other = _attrs("rag", "rag", "c3", model=None, cmd=[], mounts=[])
    stack = Stack("p", [], [service_from_attrs(a) for a in (mounted, baked, other)])
    servers = servers_from_stack(stack, _Client({"c1": b"load_tensors: CUDA0 model buffer size = 1.00 MiB\n"}))
    chat, code = servers
    assert chat == ModelServer(name="chat", argv=["/app/llama-server", "-m", "/models/m.gguf"],
                               env={"LLAMA_ARG_N_GPU_LAYERS": "99"}, model_path=Path("/srv/m.gguf"),
                               container_id="c1", log_text="load_tensors: CUDA0 model buffer size = 1.00 MiB\n")
    assert code.model_path == tmp_path / "cache" / "models" / "baked.gguf"   # the cpu profile's baked file
    assert code.log_text is None and code.container_id == "c2"               # logs only refine the budget
    assert [s.name for s in servers] == ["chat", "code"]                     # model servers only


@pytest.mark.parametrize("text, env, want", [
    ("${A}", {"A": "x"}, "x"), ("${A:-d}", {}, "d"), ("${A:-d}", {"A": ""}, "d"), ("${A-d}", {"A": ""}, ""),
    ("${A-d}", {}, "d"), ("-m /models/${F:-m.gguf}", {"F": "c.gguf"}, "-m /models/c.gguf"), ("${A}", {}, ""),
])
def test_interpolate_as_compose_does(text, env, want) -> None:
    assert interpolate(text, env, "here") == want


def test_interpolate_a_required_variable() -> None:
    with pytest.raises(ConfigError, match=r"^f services.x: set F \(set F in compose/.env"):
        interpolate("${F:?set F}", {}, "f services.x")
    with pytest.raises(ConfigError, match="F is not set"):
        interpolate("${F?}", {}, "w")


def test_plan_table_is_plain_text(tmp_path) -> None:
    model = write_sparse_gguf(tmp_path / "l1b-q8.gguf", LLAMA_SHAPES["l1b-q8"])
    plan = plan_servers([spec_from_args(f"chat=-m {model} -c 4096 -np 2", 0)], gpu_mib=None, gpu_source="none")
    t = plan_table(plan)
    assert t.columns == PLAN_COLUMNS and t.title == "GPU plan (MiB)"
    assert t.rows == [("chat", "17/17", "4096", "2", "on", "1252", "128", "66", "1446", "592", "2038", "-")]


def test_no_runtime_module_imports_the_test_stand_ins() -> None:
    for f in SRC.rglob("*.py"):
        if f.parent.name == "testing":
            continue
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [f"{'.' * node.level}{node.module or ''}"] if isinstance(node, ast.ImportFrom) else []
            assert not any("testing" in n.split(".") for n in names), f"{f} imports {names}"


def test_no_gpu_module_renders() -> None:
    for f in (SRC / "gpu").glob("*.py"):
        assert "rich" not in f.read_text(encoding="utf-8"), f
