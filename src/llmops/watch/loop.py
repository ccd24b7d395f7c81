"""The interval loop: probe, publish a snapshot, wait for the next deadline; the HTTP server that
serves the latest snapshot; a clean stop on SIGINT and SIGTERM.

The schedule is drift-free (deadlines from the start, as the NVML sampler's); a round that runs
past the interval skips the deadlines it missed and counts an overrun.  Blocking work (the Docker
engine, NVML, reading the stack again) runs in daemon threads, each with a timeout and at most
one call in flight per kind: a hung engine leaves its thread behind, never the loop, and never
holds up the exit.
"""

from __future__ import annotations

import asyncio
import math
import signal
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar

from ..runner import INFO, WARN, Say, quiet
from .collect import Deadline, HttpProbes, HttpReadings
from .gpumem import GpuSampler
from .readings import GpuReading, Snapshot
from .sources import Source, is_stale
from .state import BackendTracker, Tally, Transitions

BUDGET = 0.8                  # of the interval, for all of a round's probes
DOCKER_TIMEOUT_S = 2.0
GPU_TIMEOUT_S = 2.0
REFRESH_TIMEOUT_S = 10.0
KEEPALIVE_S = 2.0

R = TypeVar("R")
OnRound = Callable[[Snapshot, list[str]], None]


def in_daemon_thread(fn: Callable[[], R]) -> "asyncio.Future[R]":
    """`fn()` in a daemon thread, as a future of the running loop."""
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[R] = loop.create_future()

    def done(value: Any, error: BaseException | None) -> None:
        if fut.cancelled():
            return
        if error is not None:
            fut.set_exception(error)
        else:
            fut.set_result(value)

    def work() -> None:
        try:
            value, error = fn(), None
        except BaseException as e:  # noqa: BLE001 - handed to the loop, which decides
            value, error = None, e
        try:
            loop.call_soon_threadsafe(done, value, error)
        except RuntimeError:   # the loop closed while this thread hung: nobody is waiting
            pass

    threading.Thread(target=work, daemon=True, name="llmops-watch-blocking").start()
    return fut


class Watcher:
    def __init__(self, source: Source, interval_s: float, gpu: GpuSampler | None = None,
                 say: Say = quiet, clock: Callable[[], float] = time.monotonic) -> None:
        self.source = source
        self.plan = source.plan
        self.interval_s = interval_s
        self.gpu = gpu
        self.say = say
        self.clock = clock
        self.tracker = BackendTracker(self.plan.primary, self.plan.secondaries)
        self.health = Tally()
        self.gateway = Tally()
        self.transitions = Transitions()
        self.latest: Snapshot | None = None
        self.rounds = 0
        self.overruns = 0
        self._busy: set[str] = set()
        self._said: set[str] = set()

    def say_once(self, msg: str, level: str = WARN) -> None:
        if msg not in self._said:
            self._said.add(msg)
            self.say(msg, level)

    async def blocking(self, kind: str, fn: Callable[[], R], timeout: float) -> R | None:
        """`fn()` off the loop, or None when it fails, times out, or is still hung from before."""
        if kind in self._busy:
            return None
        self._busy.add(kind)
        fut = in_daemon_thread(fn)
        fut.add_done_callback(lambda _f: self._busy.discard(kind))
        try:
            return await asyncio.wait_for(asyncio.shield(fut), timeout)
        except asyncio.TimeoutError:
            self.say_once(f"{kind}: no answer within {timeout:.1f} s (skipped until it answers)")
        except Exception as e:  # noqa: BLE001 - one source failing must not end the watch
            self.say_once(f"{kind}: {type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}")
        return None

    async def _states(self, deadline: Deadline) -> dict[str, bool]:
        states = await self.blocking("docker", self.source.states, deadline.timeout(DOCKER_TIMEOUT_S))
        if states is None:
            return {}
        if is_stale(self.plan, states):
            plan = await self.blocking("stack refresh", self.source.refresh, deadline.timeout(REFRESH_TIMEOUT_S))
            if plan is not None:
                self.plan = plan
                self.tracker.follow(plan.primary, plan.secondaries)
        running = {name: st.running for name, st in states.items()}
        for t in self.plan.targets:            # removed since the snapshot: not running
            running.setdefault(t.name, False)
        return running

    async def round(self, probes: HttpProbes) -> tuple[Snapshot, list[str]]:
        t0 = self.clock()
        deadline = Deadline(self.interval_s * BUDGET, self.clock)
        running = await self._states(deadline)
        gpu_job = None
        if self.gpu is not None and self.gpu.available:
            containers = dict(self.plan.containers)
            gpu_job = asyncio.ensure_future(self.blocking("NVML", lambda: self.gpu.sample(containers),  # type: ignore[union-attr]
                                                          deadline.timeout(GPU_TIMEOUT_S)))
        http = await probes.run(self.plan, deadline, running)
        gpu = (await gpu_job if gpu_job else None) or GpuReading(False, self.gpu.reason if self.gpu else "not asked")
        if gpu_job is not None and not gpu.available:
            gpu = GpuReading(False, "NVML did not answer this round")
        self.rounds += 1
        events = self._account(http)
        snap = self._snapshot(http, gpu, self.clock() - t0)
        return snap, events

    def _account(self, http: HttpReadings) -> list[str]:
        events = []
        for h in http.health:
            self.health.count(h.service, h.up)
            edge = self.transitions.observe(h.service, h.up)
            if edge == "down":
                events.append(f"{h.service} down: {h.reason}")
            elif edge == "up":
                events.append(f"{h.service} up")
        g = http.gateway
        if g is not None:
            self.gateway.count("", g.ok)
            move = self.tracker.observe(g.backend if g.ok else None)
            if move:
                events.append(f"gateway {move}: served by {g.backend}")
        return events

    def _snapshot(self, http: HttpReadings, gpu: GpuReading, took: float) -> Snapshot:
        p = self.plan
        return Snapshot(
            cycle=self.rounds, interval_s=self.interval_s, health=tuple(http.health), llama=tuple(http.llama),
            gateway=http.gateway, vectordb=http.vectordb, gpu=gpu, expected_gpu_bytes=p.expected_gpu_bytes,
            roles=tuple((t.name, t.role) for t in p.targets),
            health_probes=tuple((k, n, self.health.failures.get(k, 0)) for k, n in sorted(self.health.probes.items())),
            gateway_probes=self.gateway.probes.get("", 0), gateway_failures=self.gateway.failures.get("", 0),
            on_secondary=self.tracker.on_secondary, gateway_backend=self.tracker.backend,
            failovers=self.tracker.failovers, failbacks=self.tracker.failbacks,
            scrape_duration_s=took, overruns=self.overruns, cpu_seconds=time.process_time())

    async def run(self, probes: HttpProbes, stop: asyncio.Event, on_round: OnRound,
                  rounds: int | None = None) -> None:
        """Rounds until `stop` is set (or `rounds` are done); a stop cancels a round in progress."""
        start = self.clock()
        k = 0
        stopper = asyncio.ensure_future(stop.wait())
        try:
            while not stop.is_set():
                job = asyncio.ensure_future(self.round(probes))
                await asyncio.wait({job, stopper}, return_when=asyncio.FIRST_COMPLETED)
                if not job.done():
                    job.cancel()
                    await asyncio.gather(job, return_exceptions=True)
                    return
                snap, events = job.result()
                self.latest = snap
                on_round(snap, events)
                if rounds is not None and self.rounds >= rounds:
                    return
                k += 1
                behind = (self.clock() - start) / self.interval_s
                if behind > k:          # the round ran past its successor's deadline
                    self.overruns += 1
                    k = math.ceil(behind)
                wait = start + k * self.interval_s - self.clock()
                if wait > 0:
                    await asyncio.wait({stopper}, timeout=wait)
        finally:
            stopper.cancel()


class MetricsHandler(BaseHTTPRequestHandler):
    """GET /metrics: the latest snapshot's text; anything else: 404.  No request is logged (a
    scrape every second would flood the terminal)."""

    render: Callable[[], bytes] = staticmethod(lambda: b"")  # type: ignore[assignment]

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        if self.path.split("?", 1)[0] != "/metrics":
            self.send_error(404, "llmops watch serves /metrics")
            return
        body = self.render()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: Any) -> None:
        pass


def handler_for(render: Callable[[], bytes]) -> type[BaseHTTPRequestHandler]:
    return type("WatchMetricsHandler", (MetricsHandler,), {"render": staticmethod(render)})


def serve(watcher: Watcher, server: ThreadingHTTPServer | None, on_round: OnRound,
          rounds: int | None = None) -> str | None:
    """Run the watch until SIGINT/SIGTERM (or `rounds`); the server serves from the first
    round on.  Returns the signal's name when one stopped it."""
    import httpx

    caught: list[str] = []
    serving: list[bool] = []

    def started(snap: Snapshot, events: list[str]) -> None:
        if server is not None and not serving:
            serving.append(True)
            threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.5}, daemon=True,
                             name="llmops-watch-http").start()
        on_round(snap, events)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, lambda s=sig: (caught.append(signal.Signals(s).name), stop.set()))
        try:
            # trust_env=False: no proxy from the environment; the probes stay on loopback.  Idle
            # connections are dropped before the servers' own keep-alive timeouts (llama-server,
            # uvicorn: 5 s): at the default 5 s a round every 5 s would send a probe on a connection
            # the server was closing and read a healthy service as down, as the load generator once
            # did.  So a round reuses connections only at intervals under KEEPALIVE_S.
            limits = httpx.Limits(max_connections=32, max_keepalive_connections=16, keepalive_expiry=KEEPALIVE_S)
            async with httpx.AsyncClient(trust_env=False, limits=limits) as client:
                await watcher.run(HttpProbes(client), stop, started, rounds)
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)

    try:
        asyncio.run(main())
    finally:
        if server is not None:
            if serving:       # shutdown() waits for serve_forever, which must have been started
                server.shutdown()
            server.server_close()
        if watcher.gpu is not None:
            watcher.gpu.close()
    if caught:
        watcher.say(f"stopped by {caught[0]} after {watcher.rounds} rounds", INFO)
    return caught[0] if caught else None
