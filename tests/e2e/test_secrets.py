"""The LiteLLM master key never reaches a run folder (issue 14, item 7): every file a real
`certify` run writes - evidence, events, manifest, HTML, JUnit, charts - is searched for it.

Issue 21: nor does any other secret the gateway's config holds.  A `redis_password` in
router_settings and a deployment's `api_key` are planted in a copy of the shipped config, the e2e
stack's gateway is started on it, and the run folders of `certify --stream` and of one network-mode
failover (`--mode partition`) are searched for both, and for the master key."""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, cli_env


def files_holding(folder: Path, secret: str) -> list[str]:
    """Files under `folder` (recursively, links followed) whose bytes hold the secret, or the random
    part of it on its own (a key shown without its `sk-llmops-` prefix is still a leak)."""
    needles = {secret.encode()}
    if secret.startswith("sk-llmops-"):
        needles.add(secret.removeprefix("sk-llmops-").encode())
    hits = []
    for p in sorted(folder.rglob("*")):
        if p.is_file() and any(n in p.read_bytes() for n in needles):
            hits.append(str(p.relative_to(folder)))
    return hits


def test_files_holding_finds_a_planted_key(tmp_path: Path) -> None:
    key = "sk-llmops-AbCdEfGhIjKlMnOpQrStUvWxYz012345"
    (tmp_path / "evidence").mkdir()
    (tmp_path / "evidence" / "04_failover_test.json").write_text('{"status": "pass"}')
    (tmp_path / "events.ndjson").write_text('{"event": "start"}\n')
    assert files_holding(tmp_path, key) == []
    (tmp_path / "evidence" / "04_failover_test.json").write_text(f'{{"auth": "Bearer {key}"}}')
    (tmp_path / "events.ndjson").write_bytes(b"\x89PNG" + key.removeprefix("sk-llmops-").encode())
    assert files_holding(tmp_path, key) == ["events.ndjson", "evidence/04_failover_test.json"]


@pytest.mark.timeout(1800)  # a certify run, on a stack that may need bringing up first
def test_certify_run_folder_holds_no_master_key(llmops: Any, healthy_stack: dict[str, Any], tmp_path: Path) -> None:
    key = healthy_stack["key"]  # read from compose/.env by the stack fixture
    assert key.startswith("sk-llmops-") or len(key) >= 16, "a key this short would match by chance"
    p = llmops("--evidence-dir", str(tmp_path / "evidence"), "certify", "--skip", "gpu", timeout=900)
    run = (tmp_path / "evidence" / "latest").resolve()
    # Whatever the verdict (on a loaded machine a check may fail or a pre-flight give up, exit 4),
    # every phase wrote its files, and none of them may hold the key.
    assert p.returncode in (0, 1, 3, 4), p.stderr[-2000:]
    files = {str(f.relative_to(run)) for f in run.rglob("*") if f.is_file()}
    for name in ("manifest.json", "events.ndjson", "summary.html", "summary.md", "summary.json", "junit.xml",
                 "01_services_status.json", "02_functional_check.json", "03_health_check.json",
                 "04_failover_test.json", "05_qdrant_retry_test.json"):
        assert name in files, (name, sorted(files))
    # the key was really in use: it is the one the running gateway was started with
    gw = healthy_stack["client"].containers.list(filters={"label": [
        f"com.docker.compose.project={healthy_stack['project']}", "com.docker.compose.service=api-gateway"]})
    assert len(gw) == 1 and f"LITELLM_MASTER_KEY={key}" in gw[0].attrs["Config"]["Env"]
    assert files_holding(run, key) == []
    assert key not in p.stdout + p.stderr
    # and the search would have seen it: plant the key in a copy of this run's own files
    copy = tmp_path / "planted"
    shutil.copytree(run, copy)
    with (copy / "events.ndjson").open("a") as f:
        f.write(json.dumps({"event": "oops", "headers": {"Authorization": f"Bearer {key}"}}) + "\n")
    assert files_holding(copy, key) == ["events.ndjson"]


LITELLM = ROOT / "compose" / "litellm"
PLANTED_NAME = "config.e2e-secrets.yaml"      # a copy of ours: the shipped config is never touched


def planted_config(redis_password: str, api_key: str) -> str:
    """The shipped config with a router secret and the secondary's api_key planted.  llama-server
    runs without --api-key, so the key it is sent changes nothing; redis_password without a
    redis_host gives LiteLLM no cache to connect to."""
    text = (LITELLM / "config.yaml").read_text()
    assert text.count("router_settings:\n") == 1 and text.count("      api_key: none\n") == 2
    text = text.replace("router_settings:\n", f"router_settings:\n  redis_password: {redis_password}\n", 1)
    head, _, tail = text.rpartition("      api_key: none\n")      # the last deployment's
    return f"{head}      api_key: {api_key}\n{tail}"


def test_planted_config_plants_both(tmp_path: Path) -> None:
    import yaml

    from llmops.gateway_config import summarize

    p = tmp_path / "c.yaml"
    p.write_text(planted_config("pw-1234-planted", "sk-planted-5678"))
    doc = yaml.safe_load(p.read_text())
    assert doc["router_settings"]["redis_password"] == "pw-1234-planted"
    assert doc["model_list"][1]["litellm_params"]["api_key"] == "sk-planted-5678"
    assert doc["model_list"][0]["litellm_params"]["api_key"] == "none"
    s = json.dumps(summarize(p).to_json())
    assert "pw-1234-planted" not in s and "sk-planted-5678" not in s and '"redis_password": "<set>"' in s


@pytest.mark.timeout(2400)  # a gateway restart on the planted config, a streamed certify, a partition, a restart back
def test_planted_secrets_reach_no_run_folder(llmops: Any, healthy_stack: dict[str, Any], tmp_path: Path) -> None:
    mark = uuid.uuid4().hex[:12]
    redis_password = f"redispw{mark}"          # unique: no file can hold it by chance
    api_key = f"depkey{mark}"
    master = healthy_stack["key"]
    path = LITELLM / PLANTED_NAME
    env = cli_env(LITELLM_CONFIG=PLANTED_NAME)
    path.write_text(planted_config(redis_password, api_key))
    try:
        up = llmops("--json", "up", "--wait-timeout", "300", env=env, timeout=600)
        assert up.returncode == 0, up.stderr[-2000:]
        gw = healthy_stack["client"].containers.list(filters={"label": [
            f"com.docker.compose.project={healthy_stack['project']}", "com.docker.compose.service=api-gateway"]})
        assert len(gw) == 1
        assert redis_password.encode() in gw[0].exec_run(["cat", "/etc/litellm/config.yaml"]).output  # in use

        # The cheapest runs that reach every writer: verify, the streaming failover, the report
        # (qdrant and gpu write nothing from the gateway's config).
        cert = llmops("--evidence-dir", str(tmp_path / "certify"), "certify", "--stream", "--skip", "qdrant",
                      "--skip", "gpu", env=env, timeout=900)
        assert cert.returncode in (0, 1, 3, 4), cert.stderr[-2000:]
        net = llmops("--evidence-dir", str(tmp_path / "partition"), "chaos", "failover", "--mode", "partition",
                     "--rps", "5", "--fault-at", "2", "--outage", "3", env=env, timeout=300)
        assert net.returncode in (0, 1), net.stderr[-2000:]

        runs = {name: (tmp_path / name / "latest").resolve() for name in ("certify", "partition")}
        for name, run in runs.items():
            files = {str(f.relative_to(run)) for f in run.rglob("*") if f.is_file()}
            assert "manifest.json" in files and "04_failover_test.json" in files, (name, sorted(files))
            # the settings were read, and named: the scan below is not passing on an empty router
            router = json.loads((run / "04_failover_test.json").read_text())["details"].get("router") or {}
            manifest = json.loads((run / "manifest.json").read_text())
            for where in (router, manifest.get("router") or {}):
                assert where.get("router_settings", {}).get("redis_password") == "<set>", (name, where)
                assert any(d.get("other", {}).get("litellm_params.api_key") == "<set>"
                           for d in where.get("deployments", [])), (name, where)
            for secret in (redis_password, api_key, master):
                assert files_holding(run, secret) == [], (name, secret[:4])
        for proc in (cert, net):
            for secret in (redis_password, api_key, master):
                assert secret not in proc.stdout + proc.stderr
        assert (runs["certify"] / "summary.md").exists()
    finally:
        path.unlink(missing_ok=True)
        back = llmops("--json", "up", "--wait-timeout", "300", timeout=600)
        assert back.returncode == 0, back.stderr
