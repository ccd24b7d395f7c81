"""`--busy`: the load a user's busy GPU box puts on the engine, for the whole benchmark.

Two CPU-bound processes (one per core here) and a loop that creates and removes a small container
(the Docker daemon busy, as on a host where other work starts containers).  Each stops by itself
at its deadline, so a benchmark that dies leaves nothing behind for long; `busy()` also stops them
on the way out.  The container loop uses an image the offline build made (no registry here) and
labels its containers, so only they are removed.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

CPU_LOOP = "import sys, time\nend = time.monotonic() + float(sys.argv[1])\nwhile time.monotonic() < end:\n    pass\n"
CHURN_LABEL = "llmops-bench-busy=1"
CHURN_IMAGE = "llmops/base-bookworm:latest"


def churn_loop(deadline_s: float) -> str:
    """A shell loop: `docker run --rm` of a container that exits at once, until the deadline."""
    return (f'end=$(( $(date +%s) + {int(deadline_s)} )); while [ "$(date +%s)" -lt "$end" ]; do '
            f'docker run --rm --label {CHURN_LABEL} {CHURN_IMAGE} true >/dev/null 2>&1 || sleep 1; done')


@contextmanager
def busy(max_s: float = 3600.0, cpus: int = 2) -> Iterator[dict[str, object]]:
    procs = [subprocess.Popen([sys.executable, "-c", CPU_LOOP, str(max_s)]) for _ in range(cpus)]
    procs.append(subprocess.Popen(["bash", "-c", churn_loop(max_s)]))
    info: dict[str, object] = {"cpu_loops": cpus, "container_churn": CHURN_IMAGE, "started": time.time()}
    try:
        time.sleep(2)      # the load is on before the first run starts
        yield info
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        subprocess.run(["bash", "-c", f"docker ps -aq --filter label={CHURN_LABEL} | xargs -r docker rm -f"],
                       capture_output=True)
