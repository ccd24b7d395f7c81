"""`llmops watch`: the stack's reliability as Prometheus metrics, per compose service.

Modules: `listen` (the --listen address and the HTTP socket, --target specs; stdlib only, so the
CLI can check options before anything heavy loads), `targets` (what to probe, from the Stack or
from --target), `collect` (the probes of one interval, each with its own timeout), `state` (the
failover/failback state machine and the running totals, pure), `gpumem` (NVML per compose
service), `metrics` (the metric families and their exposition), `loop` (the interval loop, the
HTTP server, SIGINT/SIGTERM), `monitoring` (`llmops up --monitoring`).

Nothing here renders: the live table is the CLI's (`llmops.cli.watch_cmd`).
"""
