"""The gateway's side of adopt: the LiteLLM config it mounts, the alias to certify, and which
service each of the alias' deployments sends to (api_base host, or model_info.id)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from ..backends import backend_of
from ..errors import ConfigError
from ..gateway_config import Deployment, GatewayConfig, public_api_base, read_config
from ..stack import ALIAS_LABEL, Role
from .claims import Claim, Draft
from .compose_view import ServiceView, flag_value, host_of, mounts


@dataclass
class GatewayFacts:
    """What the gateway's LiteLLM config says: where it is (`path` on this host, found as `how`,
    named in lines as `where`), the alias to certify (and what chose it) and the alias'
    deployments, each routed to the service it sends to."""

    path: Path | None
    how: str
    where: str
    alias: str | None
    alias_how: str
    deps: list[Deployment]
    routes: list[Route]

    @property
    def route_of(self) -> dict[str, Route]:
        return {r.service: r for r in self.routes}


def read_gateway(d: Draft, project_dir: Path, override: Path | None, alias: str | None) -> GatewayFacts:
    """The gateway's LiteLLM config, the alias and the alias' deployments (`override`:
    --gateway-config, `alias`: --alias); what it cannot tell is a problem line."""
    gw_name = d.holder(Role.GATEWAY)
    gw = d.svcs[gw_name] if gw_name else None
    path, how, where = _gateway_config(gw, project_dir, override, d.problems)
    cfg: GatewayConfig | None = None
    if path is not None:
        try:
            cfg = read_config(path)
        except ConfigError as e:
            d.problems.append(f"{e}; pass --gateway-config PATH if it is not the gateway's config")
    alias_name, alias_how = _alias(cfg, where, alias, gw, d.problems)
    deps = [m for m in cfg.model_list if m.model_name == alias_name] if cfg and alias_name else []
    routes = _routes(deps, d.svcs, gw, where, d.claims, d.problems)
    if cfg and alias_name and len(deps) < 2:
        d.problems.append(f"alias {alias_name} has {len(deps)} deployment(s) in {where}: llmops certifies a "
                          "failover between two; choose another with --alias NAME")
    return GatewayFacts(path, how, where, alias_name, alias_how, deps, routes)


def _gateway_config(gw: ServiceView | None, project_dir: Path, override: Path | None,
                    problems: list[str]) -> tuple[Path | None, str, str]:
    """(host path, how it was found, how lines name it) of the gateway's LiteLLM config: lines
    name it by its path in the container, the one the gateway's argv and mounts speak of."""
    if override is not None:
        return Path(override), f"--gateway-config {override}", str(override)
    if gw is None:
        return None, "", "the LiteLLM config"
    inside = flag_value(gw.args, "--config", "-c")
    if inside is None:
        # litellm without --config reads no file; a single mounted YAML is still what the
        # user meant it to run (an entrypoint script may pass it), so take that, and say so.
        yamls = [(dst, src) for kind, src, dst in mounts(gw.spec) if dst.endswith((".yaml", ".yml"))]
        if len(yamls) != 1:
            shown = ", ".join(d for d, _ in yamls) or "none"
            problems.append(f"gateway {gw.name}: no --config argument, and {len(yamls)} YAML files are "
                            f"mounted ({shown}): say which is its LiteLLM config with --gateway-config PATH")
            return None, "", "the LiteLLM config"
        inside = yamls[0][0]
        how = f"no --config; the one YAML mounted, {inside}"
    else:
        how = f"--config {inside}"
    if not inside.startswith("/"):
        wd = str(gw.spec.get("working_dir") or "")
        if not wd.startswith("/"):
            problems.append(f"gateway {gw.name}: --config {inside} is relative to the image's working "
                            "directory, which the compose config does not give: pass --gateway-config PATH")
            return None, "", inside
        inside = str(PurePosixPath(wd) / inside)
    host, why = host_of(inside, gw.spec, project_dir)
    if host is None:
        problems.append(f"gateway {gw.name}: its LiteLLM config {inside}: {why}; pass --gateway-config PATH")
        return None, "", inside
    return host, f"{how} = {host} on this host", inside


def _hosts(svcs: dict[str, ServiceView], gw: ServiceView | None) -> dict[str, dict[str, str]]:
    """DNS name -> {service: how the name reaches it}: what an api_base host can name."""
    out: dict[str, dict[str, str]] = {}

    def add(host: Any, svc: str, how: str) -> None:
        if host:
            out.setdefault(str(host), {}).setdefault(svc, how)

    for s in svcs.values():
        add(s.name, s.name, "service name")
        add(s.spec.get("hostname"), s.name, f"hostname of {s.name}")
        add(s.spec.get("container_name"), s.name, f"container_name of {s.name}")
        nets = s.spec.get("networks") or {}
        for net in (nets.values() if isinstance(nets, Mapping) else []):   # a list form has no aliases
            for a in (net.get("aliases") or []) if isinstance(net, Mapping) else []:
                add(a, s.name, f"network alias of {s.name}")
    # links resolve only inside the service that declares them: the gateway's are the ones that count
    for link in ((gw.spec.get("links") or []) if gw else []):
        target, _, name = str(link).partition(":")
        if target in svcs:
            add(name or target, target, f"link from {gw.name if gw else '?'} to {target}")
    return out


@dataclass
class Route:
    dep: Deployment
    service: str
    how: str                       # "service name", "network alias of llm-main", "model_info.id"

    @property
    def order(self) -> float | None:
        o = self.dep.litellm_params.order
        return None if o is None else float(o)

    @property
    def label(self) -> str:
        """How a problem line names the deployment."""
        return f"{dep_name(self.dep)} (-> {self.service})"


def dep_name(d: Deployment) -> str:
    """How lines name a deployment: its model id, else where it sends, without what may carry a
    credential (user:password@, ?key=): Deployment.name would show the api_base as written."""
    return d.model_info.id or public_api_base(d.litellm_params.api_base) or "(no model_info.id, no api_base)"


def num_text(x: float | None) -> str:
    return "?" if x is None else (str(int(x)) if float(x).is_integer() else str(x))


def _routes(deps: list[Deployment], svcs: dict[str, ServiceView], gw: ServiceView | None, where: str,
            claims: dict[str, Claim], problems: list[str]) -> list[Route]:
    hosts = _hosts(svcs, gw)
    out = []
    for d in deps:
        api = d.litellm_params.api_base
        host = backend_of(api, {})     # its host as written: compose's own names (`hosts`) decide
        by_host = hosts.get(host or "", {})
        if len(by_host) > 1:    # one name, several services: a model role given to one of them decides
            mine = {s: h for s, h in by_host.items() if s in claims and claims[s].role in Role.MODEL_SERVERS}
            by_host = mine if len(mine) == 1 else by_host
        by_id = d.model_info.id if d.model_info.id in svcs else None
        if len(by_host) > 1:
            problems.append(f"deployment {dep_name(d)} in {where}: api_base host {host} names several services "
                            f"({', '.join(f'{s}: {h}' for s, h in sorted(by_host.items()))}): say which with "
                            f"--role SERVICE={Role.PRIMARY} / {Role.SECONDARY}")
            continue
        if by_host:
            svc, how = next(iter(by_host.items()))
            if by_id and by_id != svc:
                problems.append(f"deployment {dep_name(d)} in {where}: its api_base {public_api_base(api)} reaches {svc} "
                                f"({how}) but its model_info.id names service {by_id}: make them agree")
                continue
            out.append(Route(d, svc, how))
        elif by_id:
            out.append(Route(d, by_id, "model_info.id"))
        else:
            problems.append(f"deployment {dep_name(d)} in {where}: api_base {public_api_base(api)} names no service "
                            f"of this project (host {host or 'none'}; services, hostnames, container names, "
                            f"network aliases and links: {', '.join(sorted(hosts))})")
    return out


def _alias(cfg: GatewayConfig | None, where: str, alias: str | None, gw: ServiceView | None,
           problems: list[str]) -> tuple[str | None, str]:
    if cfg is None:
        return alias or (gw.labels.get(ALIAS_LABEL) if gw else None), ""
    counts: dict[str, int] = {}
    for m in cfg.model_list:
        if m.model_name:
            counts[m.model_name] = counts.get(m.model_name, 0) + 1
    listed = ", ".join(f"{n} ({c})" for n, c in counts.items()) or "none"
    if alias is not None:
        if alias not in counts:
            problems.append(f"--alias {alias}: no model_name {alias} in {where}; model names (deployments): {listed}")
            return None, ""
        return alias, f"--alias {alias}"
    labelled = gw.labels.get(ALIAS_LABEL) if gw else None
    if labelled:
        if labelled not in counts:
            problems.append(f"gateway {gw.name if gw else '?'}: its label {ALIAS_LABEL}={labelled} names no model_name "
                            f"in {where} ({listed}): choose with --alias NAME")
            return None, ""
        return labelled, f"label {ALIAS_LABEL}={labelled}"
    multi = [n for n, c in counts.items() if c >= 2]
    if len(multi) == 1:
        return multi[0], ""
    if multi:
        problems.append(f"{len(multi)} model names in {where} have 2+ deployments ({', '.join(multi)}): "
                        "say which alias to certify with --alias NAME")
    else:
        problems.append(f"no model_name in {where} has 2+ deployments ({listed}): llmops certifies a failover "
                        "between two; choose with --alias NAME")
    return None, ""
