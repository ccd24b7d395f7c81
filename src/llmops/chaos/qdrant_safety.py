"""The data side of `chaos qdrant`: point counts, and the data-safety step (acknowledged writes
must survive a SIGKILL of the vector DB), with its DoD lines."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass

import httpx

from ..context import Context
from ..evidence import Criterion, JsonObject
from ..runner import Run
from ..stack import Service
from .common import FaultFrame
from .restore import wait_http_ok

MIN_SAFETY_POINTS = 100
WRITE_BATCH = 20
DURABILITY_COLLECTION = "llmops_durability"
# The data-safety figures a run's metrics carry.
SAFETY_METRICS = ("requested_writes", "acked_writes", "found_after_kill", "lost_writes")


def count_points(qdrant: Service, collection: str, timeout: float = 5.0) -> int | None:
    try:
        r = httpx.post(f"{qdrant.url}/collections/{collection}/points/count", json={"exact": True}, timeout=timeout)
    except httpx.HTTPError:
        return None
    return r.json()["result"]["count"] if r.status_code == 200 else None


def all_points(qdrant: Service) -> dict[str, int | None]:
    """Every collection's exact point count (a stack without rag names no collection of its own)."""
    try:
        r = httpx.get(f"{qdrant.url}/collections", timeout=5.0)
        names = [c["name"] for c in r.json()["result"]["collections"]] if r.status_code == 200 else []
    except (httpx.HTTPError, ValueError, KeyError, TypeError):
        return {}
    return {n: count_points(qdrant, n) for n in sorted(names) if n != DURABILITY_COLLECTION}


def write_points(base: str, n: int) -> tuple[dict[str, dict[str, int]], list[str]]:
    """Write n points in batches with wait=true: the points whose batch was acknowledged
    (id -> payload), and why any batch was not."""
    acked: dict[str, dict[str, int]] = {}
    errors: list[str] = []
    with httpx.Client(timeout=30) as c:
        for start in range(0, n, WRITE_BATCH):
            pts = [{"id": str(uuid.uuid4()), "vector": [1.0, float(i % 7), float(i % 11), 0.5], "payload": {"i": i}}
                   for i in range(start, min(n, start + WRITE_BATCH))]
            try:
                r = c.put(f"{base}/points", params={"wait": "true"}, json={"points": pts})
                done = r.status_code == 200 and (r.json().get("result") or {}).get("status") == "completed"
                why = f"HTTP {r.status_code}: {r.text[:120]}"
            except (httpx.HTTPError, ValueError) as e:
                done, why = False, f"{e.__class__.__name__}: {e}"[:160]
            if done:
                acked.update({p["id"]: p["payload"] for p in pts})
            else:
                errors.append(f"points {start}..{start + len(pts) - 1}: {why}")
    return acked, errors


def read_back(base: str, ids: list[str]) -> tuple[dict[str, object] | None, str | None]:
    """The points Qdrant returns for these IDs (id -> payload), by ID, as Qdrant's REST API reads
    them (`POST /collections/{name}/points`); None and the reason when the read fails."""
    try:
        r = httpx.post(f"{base}/points", json={"ids": ids, "with_payload": True, "with_vector": False}, timeout=30)
        if r.status_code != 200:
            return None, f"HTTP {r.status_code}: {r.text[:160]}"
        return {str(p["id"]): p.get("payload") for p in r.json()["result"]}, None
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as e:
        return None, f"{e.__class__.__name__}: {e}"[:200]


@dataclass(frozen=True)
class WriteComparison:
    """Acknowledged writes against what was read back by ID.  Its fields are the head of the
    evidence's `details.data_safety`, in that order."""

    requested_writes: int
    acked_writes: int
    write_errors: list[str]         # the first few
    read_back: bool
    read_error: str | None
    found_after_kill: int | None    # None: the read-back failed
    lost_writes: int
    changed_writes: int
    lost_ids: list[str]             # the first few
    changed_ids: list[str]

    def to_json(self) -> JsonObject:
        return asdict(self)


@dataclass(frozen=True)
class DataSafety:
    """The data-safety step's evidence (`details.data_safety`): the writes compared, and the
    Qdrant image that was killed."""

    writes: WriteComparison
    qdrant_image: str

    def to_json(self) -> JsonObject:
        return {**self.writes.to_json(), "qdrant_image": self.qdrant_image}


def compare_writes(requested: int, acked: Mapping[str, object], found: Mapping[str, object] | None,
                   read_error: str | None = None, write_errors: list[str] | None = None) -> WriteComparison:
    """Acknowledged IDs against what was read back by ID: which are missing, which came back
    changed. Counts alone would let other points stand in for lost ones."""
    missing = sorted(set(acked) - set(found or {})) if found is not None else sorted(acked)
    changed = sorted(i for i in acked if found is not None and i in found and found[i] != acked[i])
    return WriteComparison(
        requested_writes=requested,
        acked_writes=len(acked),
        write_errors=(write_errors or [])[:5],
        read_back=found is not None,
        read_error=read_error,
        found_after_kill=None if found is None else len(acked) - len(missing),
        lost_writes=len(missing),
        changed_writes=len(changed),
        lost_ids=missing[:5],
        changed_ids=changed[:5],
    )


def safety_criteria(s: WriteComparison) -> list[Criterion]:
    """The data-safety DoD lines. Each fails on its own: too few writes, writes not all
    acknowledged, a failed read-back, a missing or changed acknowledged point."""
    n, acked = s.requested_writes, s.acked_writes
    if not s.read_back:
        actual = f"read-back failed: {s.read_error}"
    else:
        actual = f"{s.found_after_kill} of {acked} found, {s.lost_writes} missing, {s.changed_writes} changed"
        if s.lost_ids:
            actual += f" (missing e.g. {', '.join(s.lost_ids[:2])})"
    return [
        Criterion.judge(f"all writes acknowledged (n >= {MIN_SAFETY_POINTS})", f"{n} of {n}, n >= {MIN_SAFETY_POINTS}",
                        acked, lambda a: a == n, samples=n, need=MIN_SAFETY_POINTS, shown=f"{acked} of {n}"),
        Criterion.judge("acknowledged writes survive SIGKILL (read back by ID)", f"{acked} of {acked} found, unchanged",
                        s.lost_writes + s.changed_writes if s.read_back else None, lambda bad: bad == 0,
                        samples=acked, shown=actual),
    ]


def data_safety(ctx: Context, run: Run, qdrant: Service, n: int) -> DataSafety:
    """Acknowledged writes (wait=true) must survive a SIGKILL of whatever Qdrant the profile runs:
    each acknowledged ID is read back by ID after the restart."""
    base = f"{qdrant.url}/collections/{DURABILITY_COLLECTION}"
    with httpx.Client(timeout=30) as c:
        c.delete(base)
        c.put(base, json={"vectors": {"size": 4, "distance": "Cosine"}}).raise_for_status()
    acked, write_errors = write_points(base, n)
    run.say(f"data safety: {len(acked)} of {n} points acknowledged; docker kill {qdrant.name}")
    frame = FaultFrame(ctx, run, qdrant, "kill", phase="qdrant-durability")

    def body(f: FaultFrame) -> None:
        f.inject()
        f.undo()
        wait_http_ok(f"{qdrant.url}/readyz", 60.0)

    frame.apply(body)
    found: dict[str, object] | None
    found, read_error = read_back(base, list(acked)) if acked else ({}, None)
    with httpx.Client(timeout=10) as c:
        c.delete(base)
    return DataSafety(compare_writes(n, acked, found, read_error, write_errors),
                      ctx.client.containers.get(qdrant.container_id).attrs["Config"]["Image"])


def safety_step(ctx: Context, run: Run, qdrant: Service, frame: FaultFrame, wanted: bool,
                points: int) -> DataSafety | None:
    """The data-safety step after the outage, when asked for and the outage was restored; a note on
    the frame when it was not asked for."""
    safety = data_safety(ctx, run, qdrant, points) if (wanted and frame.restored) else None
    if not wanted:
        frame.notes.append(f"data safety not run (no SIGKILL of {qdrant.name}, no {DURABILITY_COLLECTION} "
                           "collection): pass --data-safety to run it")
    return safety


def safety_metrics(safety: DataSafety | None) -> dict[str, int | None]:
    """The data-safety figures for the run's metrics (none when the step did not run)."""
    return {k: getattr(safety.writes, k) for k in SAFETY_METRICS} if safety else {}
