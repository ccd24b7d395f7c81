"""The Debian Prometheus binaries for the watch tests (not a test module): where promtool and
prometheus are, a real Prometheus run as a subprocess on a temporary config and storage, and
the questions the tests ask its HTTP API.

scripts/test extracts Debian's `prometheus` .deb (from the apt cache or `apt-get download`,
never installed) into /opt/prometheus-deb, or $LLMOPS_PROMETHEUS_DIR; the tests look there and on
PATH, and skip, saying so, only when neither has the binary.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
RULES = ROOT / "compose" / "prometheus" / "llmops.rules.yml"
DEB_DIRS = [os.environ.get("LLMOPS_PROMETHEUS_DIR", ""), "/opt/prometheus-deb"]


def find_tool(name: str) -> str | None:
    """`promtool` or `prometheus`: on PATH, else in an extracted .deb's usr/bin."""
    found = shutil.which(name)
    if found:
        return found
    for d in DEB_DIRS:
        p = Path(d) / "usr" / "bin" / name if d else None
        if p is not None and p.is_file() and os.access(p, os.X_OK):
            return str(p)
    return None


def missing_reason(name: str) -> str:
    return (f"{name} not found on PATH nor in {' or '.join(d for d in DEB_DIRS if d)}/usr/bin "
            "(scripts/test extracts Debian's prometheus .deb there)")


def fast_rules(dest: Path, for_s: int = 2) -> Path:
    """A copy of the shipped rules with every `for:` cut to `for_s` seconds, for a test that
    cannot wait 30 s or 5 minutes; the expressions are the shipped ones."""
    doc = yaml.safe_load(RULES.read_text())
    for group in doc["groups"]:
        for rule in group["rules"]:
            if "for" in rule:
                rule["for"] = f"{for_s}s"
    dest.write_text(yaml.safe_dump(doc, sort_keys=False))
    return dest


class Prometheus:
    """A real Prometheus scraping `targets` every second, evaluating `rules` every second."""

    def __init__(self, binary: str, folder: Path, port: int, targets: list[str], rules: Path) -> None:
        self.url = f"http://127.0.0.1:{port}"
        cfg = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "900ms"},
               "rule_files": [str(rules)],
               "scrape_configs": [{"job_name": "llmops-watch", "static_configs": [{"targets": targets}]}]}
        (folder / "prometheus.yml").write_text(yaml.safe_dump(cfg))
        self.log = open(folder / "prometheus.log", "w")
        self.proc = subprocess.Popen([binary, f"--config.file={folder / 'prometheus.yml'}",
                                      f"--storage.tsdb.path={folder / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        self.wait_ready()

    def wait_ready(self, timeout: float = 30.0) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise AssertionError(f"prometheus exited {self.proc.returncode}; see {self.log.name}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"prometheus not ready after {timeout} s; see {self.log.name}")

    def api(self, path: str, **params: Any) -> Any:
        q = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}?{q}", timeout=10) as r:
            doc = json.loads(r.read())
        assert doc["status"] == "success", doc
        return doc["data"]

    def range_values(self, query: str, start: float, end: float, step: float = 1.0) -> list[float]:
        """query_range's values of the one series `query` selects, in time order."""
        data = self.api("query_range", query=query, start=f"{start:.3f}", end=f"{end:.3f}", step=f"{step:g}")
        result = data["result"]
        assert len(result) == 1, f"{query}: expected one series, got {len(result)}: {result}"
        return [float(v) for _t, v in result[0]["values"]]

    def range_any(self, query: str, start: float, end: float, step: float = 1.0) -> list[dict[str, Any]]:
        return self.api("query_range", query=query, start=f"{start:.3f}", end=f"{end:.3f}", step=f"{step:g}")["result"]

    def instant(self, query: str) -> list[dict[str, Any]]:
        return self.api("query", query=query)["result"]

    def wait_for(self, query: str, timeout: float, what: str = "") -> list[dict[str, Any]]:
        """Poll an instant query until it returns a series."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            got = self.instant(query)
            if got:
                return got
            time.sleep(0.5)
        raise AssertionError(f"{what or query}: nothing after {timeout} s")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def runs(values: list[float]) -> list[float]:
    """The values with repeats collapsed: [1, 1, 0, 0, 1] -> [1, 0, 1]."""
    out: list[float] = []
    for v in values:
        if not out or out[-1] != v:
            out.append(v)
    return out



def assert_down_and_back(prom: Any, up: str, start: float, end: float) -> None:
    """Between `start` and `end` (unix seconds), the `up` series went 1 -> 0 -> 1 and the gateway
    went onto the secondary and back: llmops_gateway_on_secondary 0 -> 1 -> 0."""
    assert runs(prom.range_values(up, start, end)) == [1, 0, 1]
    assert runs(prom.range_values("llmops_gateway_on_secondary", start, end)) == [0, 1, 0]
