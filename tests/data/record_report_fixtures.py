"""Re-record the real-stack fixtures tests/test_report.py renders.

Needs the cpu stack up (the e2e one: LLMOPS_E2E_PROJECT, LLMOPS_E2E_PORT_BASE), then:

    python tests/data/record_report_fixtures.py [inspect] [qdrant] [functional]

(RECORD_TRIES=N: how many runs to try until the recorded check passes; default 3.)

Writes, all produced by the real code against the real stack:
- cpu_stack_inspect.json: `docker version` and `docker inspect` of the six containers, trimmed
  to what service_from_attrs and manifest.collect read (no environment: it holds the master key);
- recorded/02_functional_check.{json,txt}: a real `llmops verify`;
- recorded/05_qdrant_retry_test.{json,txt} and recorded/qdrant_events.ndjson: a real
  `llmops chaos qdrant` (stop, 6 s), with its events.
It refuses to write anything that contains the stack's master key.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from llmops.evidence import CHECK_FILES

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
PROJECT = os.environ.get("LLMOPS_E2E_PROJECT", "llmops-e2e-stack")
BASE = int(os.environ.get("LLMOPS_E2E_PORT_BASE", "28000"))
PORTS = {"GATEWAY_PORT": BASE, "CHAT_PORT": BASE + 1, "RAG_PORT": BASE + 2, "EMBEDDING_PORT": BASE + 3,
         "CODE_PORT": BASE + 4, "QDRANT_PORT": BASE + 5}


def llmops(evidence: Path, check: str, *args: str) -> Path:
    """Run the command until the check we record passed (a loaded machine can fail another one)."""
    tries = int(os.environ.get("RECORD_TRIES", "3"))
    for _ in range(tries):
        run = _llmops(evidence, *args)
        if json.loads((run / f"{CHECK_FILES[check]}.json").read_text())["status"] == "pass":
            return run
        time.sleep(10)
    raise SystemExit(f"llmops {' '.join(args)}: {check} did not pass in {tries} tries; see {run}")


def _llmops(evidence: Path, *args: str) -> Path:
    env = {**os.environ, **{k: str(v) for k, v in PORTS.items()}}
    p = subprocess.run([sys.executable, "-m", "llmops", "--project-dir", str(ROOT), "--profile", "cpu",
                        "--project-name", PROJECT, "--evidence-dir", str(evidence), *args],
                       capture_output=True, text=True, env=env, timeout=900)
    if p.returncode not in (0, 1):
        raise SystemExit(f"llmops {' '.join(args)} exited {p.returncode}:\n{p.stderr[-3000:]}")
    return (evidence / "latest").resolve()


def trim(a: dict) -> dict:
    st = a["State"]
    return {
        "Id": a["Id"], "Name": a["Name"], "Image": a["Image"], "Created": a.get("Created"),
        "State": {k: st.get(k) for k in ("Status", "Running", "Paused", "Restarting", "StartedAt", "FinishedAt")}
        | ({"Health": {"Status": st["Health"]["Status"]}} if st.get("Health") else {}),
        "HostConfig": {"PortBindings": (a.get("HostConfig") or {}).get("PortBindings")},
        "Mounts": [{k: m.get(k) for k in ("Type", "Source", "Destination", "RW")} for m in a.get("Mounts", [])],
        "Config": {"Image": a["Config"]["Image"], "Labels": a["Config"]["Labels"]},
        "NetworkSettings": {"Ports": (a.get("NetworkSettings") or {}).get("Ports")},
    }


def main() -> None:
    import docker

    from llmops.compose import read_env_file

    key = read_env_file(ROOT / "compose" / ".env").get("LITELLM_MASTER_KEY") or "\0"
    client = docker.from_env()
    cs = client.containers.list(filters={"label": f"com.docker.compose.project={PROJECT}"})
    if len(cs) != 6:
        raise SystemExit(f"expected the six containers of {PROJECT}, found {len(cs)}")
    v = client.version()
    shapes = {"recorded_from": "a real cpu stack (docker-compose v1, engine 20.10)",
              "version": {k: v.get(k) for k in ("Version", "ApiVersion", "MinAPIVersion", "Os", "Arch", "GoVersion")},
              "containers": [trim(c.attrs) for c in sorted(cs, key=lambda c: c.labels["com.docker.compose.service"])]}
    def write(p: Path, text: str) -> None:
        if key in text:
            raise SystemExit(f"refusing to write {p.name}: it contains the master key")
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
        print(f"wrote {p.relative_to(ROOT)}", flush=True)

    only = set(sys.argv[1:]) or {"inspect", "qdrant", "functional"}
    if "inspect" in only:
        write(HERE / "cpu_stack_inspect.json", json.dumps(shapes, indent=2) + "\n")
    rec = HERE / "recorded"
    with tempfile.TemporaryDirectory() as tmp:
        if "qdrant" in only:
            qdrant = llmops(Path(tmp) / "q", "qdrant", "chaos", "qdrant")
            events = [line for line in (qdrant / "events.ndjson").read_text().splitlines()
                      if json.loads(line).get("phase") == "qdrant"
                      or json.loads(line)["kind"] in ("rag_health", "rag_query")]
            write(rec / "qdrant_events.ndjson", "\n".join(events) + "\n")
            for ext in ("json", "txt"):
                write(rec / f"05_qdrant_retry_test.{ext}", (qdrant / f"05_qdrant_retry_test.{ext}").read_text())
        if "functional" in only:
            verify = llmops(Path(tmp) / "v", "functional", "verify")
            for ext in ("json", "txt"):
                write(rec / f"02_functional_check.{ext}", (verify / f"02_functional_check.{ext}").read_text())

if __name__ == "__main__":
    main()
    shutil.rmtree(HERE / "__pycache__", ignore_errors=True)
