"""`llmops gpu-plan`: will these llama-servers fit on this GPU?  No GPU and no Docker needed.

For each server (a llama-server command line with `-m FILE`, or the gpu profile's model servers
from compose/gpu.yml), the budget is computed from the GGUF file with llama.cpp's own defaults,
then the `-fit` step is predicted in start order against the card's free memory.
"""

from __future__ import annotations

import os
import re
import shlex
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from ..rounding import rounded
from ..errors import ConfigError
from ..evidence import JsonObject
from .budget import Budget, BudgetFile, apply_overrides, budget_from_info
from .calibration import Calibration, default_calibration
from .fit import fit_server
from .llamaargs import parse_server_args
from .model import read_model_info
from .server import ModelServer

if TYPE_CHECKING:
    from ..stack import Service


@dataclass(frozen=True)
class ServerPlan:
    """One server's budget and predicted fit, in MiB.  Its fields are `gpu-plan --json`'s
    `servers[]`, in that order."""

    name: str
    model: str
    n_layer: int                    # these six: what the budget's formula used (Budget.params)
    n_gpu_layers: int
    output_on_gpu: bool
    n_ctx: int
    n_parallel: int
    flash_attn: bool
    weights_mib: float | None
    kv_cache_mib: float | None
    compute_mib: float | None
    buffers_mib: float | None
    overhead_mib: float | None
    total_mib: float | None
    fit_changes: list[str]          # what llama.cpp's -fit would change to make it fit
    unknown: dict[str, str]         # term -> why it is unknown
    assumptions: list[str]
    overhead_source: str | None

    def to_json(self) -> JsonObject:
        return asdict(self)


@dataclass
class Plan:
    servers: list[ServerPlan]
    total_mib: float | None
    gpu_mib: float | None
    gpu_source: str
    fits: bool | None
    calibration: Calibration

    @property
    def exit_code(self) -> int:
        return 1 if self.fits is False else 0

    def to_json(self) -> JsonObject:
        return {"servers": [s.to_json() for s in self.servers], "total_mib": rounded(self.total_mib, 1),
                "gpu_mib": self.gpu_mib, "fits": self.fits, "gpu_source": self.gpu_source,
                "calibration": {"name": self.calibration.name, "source": self.calibration.source,
                                "overhead_mib": self.calibration.overhead_mib}}


def refuse_unknown_flags(where: str, unknown: list[str]) -> None:
    """A flag llama-server does not know makes it exit at start, so a plan for it would be a plan
    for a server that never runs (and the flag may be a typo of one that changes memory)."""
    if unknown:
        raise ConfigError(f"{where}: llama-server does not know {', '.join(dict.fromkeys(unknown))} "
                          "(pass --allow-unknown-flags if your build does)")


_NAMED = re.compile(r"([A-Za-z0-9][A-Za-z0-9_.-]{0,62})=(-.*)", re.S)


def spec_from_args(args: str, index: int, allow_unknown_flags: bool = False) -> ModelServer:
    """`--server "ARGS"` or `--server "NAME=ARGS"`: a llama-server command line with `-m FILE`,
    named NAME (a service's name, say) or server-N."""
    named = _NAMED.fullmatch(args.strip())
    name, args = (named.group(1), named.group(2)) if named else (f"server-{index + 1}", args)
    opts = parse_server_args(args)
    if not allow_unknown_flags:
        refuse_unknown_flags(f"--server {args!r}", opts.unknown_flags)
    if not opts.model_arg:
        raise ConfigError(f"--server {args!r}: no -m MODEL_FILE")
    return ModelServer(name=name, argv=shlex.split(args), model_path=Path(opts.model_arg).expanduser())


def specs_from_services(services: list[Service], allow_unknown_flags: bool = False) -> list[ModelServer]:
    """The running stack's llama-servers (model servers and an embedding server), named by service:
    each one's real command line, and its model's host file through its mounts.  A server whose
    model is not on a host mount (baked into its image, as in the cpu profile) is not planned: its
    file cannot be read from here, and such a server does not use a GPU."""
    from ..stack import Role

    specs = []
    for svc in services:
        if svc.role not in (*Role.MODEL_SERVERS, Role.EMBEDDING) or svc.state != "running":
            continue
        argv = svc.argv
        if argv and Path(argv[0]).name == "llama-server":
            argv = argv[1:]
        opts = parse_server_args(argv)
        if not opts.model_arg:
            continue
        if not allow_unknown_flags:
            refuse_unknown_flags(f"service {svc.name}", opts.unknown_flags)
        host = svc.host_path(opts.model_arg)
        if host is not None:
            specs.append(ModelServer(name=svc.name, argv=argv, model_path=host, env=svc.env,
                                     container_id=svc.container_id))
    return specs


def specs_from_compose(project_dir: Path, env: Mapping[str, str] | None = None,
                       allow_unknown_flags: bool = False) -> list[ModelServer]:
    """The gpu profile's model servers: services of compose/gpu.yml whose command has -m.  Read
    from the file, interpolated as compose would, without compose: gpu-plan needs no Docker."""
    from ..compose import interpolate, load_compose_files, read_env_file
    from ..gateway_config import host_path_of

    f = project_dir / "compose" / "gpu.yml"
    if not f.is_file():
        raise ConfigError(f"{f}: no such file")
    doc = load_compose_files([f])[0]
    e = {**read_env_file(project_dir / "compose" / ".env"), **(env if env is not None else os.environ)}
    specs = []
    for name, svc in (doc.get("services") or {}).items():
        cmd = (svc or {}).get("command")
        if not isinstance(cmd, list) or not any(a in ("-m", "--model") for a in map(str, cmd)):
            continue
        where = f"{f} services.{name}"
        argv = [interpolate(str(a), e, where) for a in cmd]
        opts = parse_server_args(argv)
        if not allow_unknown_flags:
            refuse_unknown_flags(where, opts.unknown_flags)
        inside = opts.model_arg or ""
        mounts = [(parts[0], parts[1]) for parts in
                  (interpolate(str(v), e, where).split(":") for v in svc.get("volumes") or [])
                  if len(parts) >= 2]
        host = host_path_of(inside, mounts)
        if host is None:
            raise ConfigError(f"{where}: model {inside} is not under a mounted host folder")
        specs.append(ModelServer(name=str(name), argv=argv, model_path=host))
    if not specs:
        raise ConfigError(f"{f}: no service runs a model (-m) there")
    return specs


def _model_file(spec: ModelServer) -> Path:
    if spec.model_path is None:
        raise ConfigError(f"{spec.name}: no model file on this machine to plan from")
    return spec.model_path


def plan_servers(specs: list[ModelServer], *, gpu_mib: float | None, gpu_source: str,
                 calibration: Calibration | None = None,
                 budget_file: BudgetFile | None = None) -> Plan:
    """Budget every server, then predict fit in start order.  Raises ConfigError for bad input."""
    cal = calibration or default_calibration()
    ctx_file = budget_file.cuda_context_mib if budget_file else None
    rows: list[ServerPlan] = []
    free = gpu_mib
    totals: list[float | None] = []
    all_fit: bool | None = True if gpu_mib is not None else None
    for spec in specs:
        opts = parse_server_args(spec.argv, spec.env)
        info = read_model_info(_model_file(spec))
        b = budget_from_info(info, opts, service=spec.name, cuda_context_mib=ctx_file,
                             calibration=cal)
        if budget_file and spec.name in budget_file.services:
            apply_overrides(b, budget_file.services[spec.name])
        changes: list[str] = []
        if free is not None and b.total_mib is not None:
            out = fit_server(info, opts, b, free, spec.name, cal)
            changes, b = out.changes, out.budget
            if changes or not out.fits:
                all_fit = False
            free -= b.total_mib or 0.0
        elif free is not None:
            all_fit = None if all_fit is not False else False
        totals.append(b.total_mib)
        rows.append(server_row(spec, b, changes))
    total = None if any(t is None for t in totals) else float(sum(totals))  # type: ignore[arg-type]
    if gpu_mib is not None and total is not None and total > gpu_mib:
        all_fit = False
    return Plan(servers=rows, total_mib=total, gpu_mib=gpu_mib, gpu_source=gpu_source,
                fits=all_fit, calibration=cal)


def server_row(spec: ModelServer, b: Budget, fit_changes: list[str]) -> ServerPlan:
    p = b.params
    return ServerPlan(
        name=spec.name, model=str(spec.model_path), n_layer=p.get("n_layer"),
        n_gpu_layers=p.get("n_gpu_layers"), output_on_gpu=p.get("output_on_gpu"),
        n_ctx=p.get("n_ctx"), n_parallel=p.get("n_parallel"),
        flash_attn=p.get("flash_attn"),
        weights_mib=rounded(b.weights_mib, 2), kv_cache_mib=rounded(b.kv_cache_mib, 2),
        compute_mib=rounded(b.compute_mib, 2), buffers_mib=rounded(b.buffers_mib, 2),
        overhead_mib=rounded(b.cuda_context_mib, 1), total_mib=rounded(b.total_mib, 1),
        fit_changes=fit_changes,
        unknown=dict(b.unknown), assumptions=list(b.assumptions),
        overhead_source=b.sources.get("cuda_context_mib"),
    )


def detect_free_mib() -> tuple[float | None, str]:
    """Free memory of GPU 0 by NVML, or (None, why not)."""
    from .nvml import NvmlSession, NvmlUnavailable, load_nvml

    try:
        nvml, _ = load_nvml()
        with NvmlSession(nvml) as s:
            d = s.devices[0]
            smp = s.sample(d, 0.0)
            return float(smp.free_mib), f"free memory of GPU 0 ({d.name}) by NVML"
    except (NvmlUnavailable, IndexError) as exc:
        return None, f"no GPU detected ({str(exc).splitlines()[0] if str(exc) else 'no device'}); no fit check"
    except Exception as exc:  # noqa: BLE001 - a driver error must not stop a plan
        return None, f"NVML failed ({type(exc).__name__}); no fit check"


@dataclass
class PlanTable:
    """The plan as a table of plain text, for whoever renders it (the CLI)."""

    title: str
    columns: tuple[str, ...]
    rows: list[tuple[str, ...]]


PLAN_COLUMNS = ("server", "layers", "ctx", "slots", "FA", "weights", "KV", "compute", "buffers",
                "overhead", "total", "fit")


def plan_table(plan: Plan) -> PlanTable:
    """One row per server, in start order; figures in MiB ("unknown" when a term is)."""
    def f(v: Any, fmt: str = "{:.0f}") -> str:
        return "unknown" if v is None else fmt.format(v)

    rows = [(s.name, f"{s.n_gpu_layers}/{s.n_layer + 1}" + ("" if s.output_on_gpu else " (no output)"),
             str(s.n_ctx), str(s.n_parallel), "on" if s.flash_attn else "off",
             f(s.weights_mib), f(s.kv_cache_mib), f(s.compute_mib),
             f(s.buffers_mib), f(s.overhead_mib), f(s.total_mib),
             "; ".join(s.fit_changes) or ("as asked" if plan.gpu_mib is not None else "-"))
            for s in plan.servers]
    return PlanTable(title="GPU plan (MiB)", columns=PLAN_COLUMNS, rows=rows)
