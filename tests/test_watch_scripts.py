"""scripts/test's promtool step (lib.sh `setup_prometheus_deb`): Debian's prometheus .deb from the
apt cache, kept in $LLMOPS_CACHE/debs/<suite>, extracted (never installed) where the watch tests
look; a second run finds it there.  And the image build's .deb source (llmops.debcache)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from llmops.debcache import cached_deb, download_argv, fetch_deb, host_suite

ROOT = Path(__file__).resolve().parents[1]
ARCHIVES = Path("/var/cache/apt/archives")
HOST_DEB = cached_deb("prometheus", ARCHIVES)


def run_setup(tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LLMOPS_CACHE": str(tmp_path / "cache"), "LLMOPS_PROMETHEUS_DIR": str(tmp_path / "dest"),
           "APT_ARCHIVES": str(ARCHIVES)}
    return subprocess.run(["bash", "-c", 'source "$1"; setup_prometheus_deb; echo "dir=$LLMOPS_PROMETHEUS_DIR"', "bash",
                           str(ROOT / "scripts" / "lib.sh")], capture_output=True, text=True, env=env, timeout=120)


@pytest.mark.skipif(HOST_DEB is None, reason=f"no prometheus_*.deb in {ARCHIVES} (the step would download one)")
def test_setup_prometheus_deb_extracts_from_the_apt_cache(tmp_path: Path) -> None:
    p = run_setup(tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    tool = tmp_path / "dest" / "usr" / "bin" / "promtool"
    assert os.access(tool, os.X_OK) and (tmp_path / "dest" / "usr" / "bin" / "prometheus").is_file()
    assert f"dir={tmp_path / 'dest'}" in p.stdout and "extracted to" in p.stdout
    kept = list((tmp_path / "cache" / "debs").glob("*/prometheus_*.deb"))
    assert [k.name for k in kept] == [HOST_DEB.name]         # kept outside the clone for the next run
    again = run_setup(tmp_path)
    assert again.returncode == 0 and "already in" in again.stdout
    v = subprocess.run([str(tool), "--version"], capture_output=True, text=True)
    assert "promtool, version" in v.stdout + v.stderr


def test_scripts_test_runs_the_step_before_pytest() -> None:
    text = (ROOT / "scripts" / "test").read_text()
    assert text.index("setup_prometheus_deb") < text.index('"$VENV/bin/pytest"')


def host_with(tmp_path: Path, deb: str, content: bytes, os_release: str) -> tuple[Path, Path]:
    """A host's apt cache holding one .deb, and its os-release."""
    archives = tmp_path / "archives"
    archives.mkdir()
    (archives / deb).write_bytes(content)
    release = tmp_path / "os-release"
    release.write_text(os_release)
    return archives, release


def test_fetch_deb_prefers_the_cache_then_the_hosts_apt_cache(tmp_path: Path) -> None:
    archives, bookworm = host_with(tmp_path, "prometheus_2.42.0+ds-5+deb12u1_amd64.deb", b"deb",
                                   'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nVERSION_CODENAME=bookworm\n')
    calls: list[list[str]] = []
    got = fetch_deb("prometheus", tmp_path / "cache", "bookworm", "img", calls.append, archives, bookworm)
    assert got == tmp_path / "cache" / "debs" / "bookworm" / "prometheus_2.42.0+ds-5+deb12u1_amd64.deb"
    assert calls == [] and got.read_bytes() == b"deb"
    (archives / "prometheus_2.42.0+ds-5+deb12u1_amd64.deb").unlink()
    assert fetch_deb("prometheus", tmp_path / "cache", "bookworm", "img", calls.append, archives, bookworm) == got
    assert calls == []


def test_fetch_deb_downloads_in_the_base_image_on_another_suite(tmp_path: Path) -> None:
    archives, trixie = host_with(tmp_path, "prometheus_2.53.3+ds1-1_amd64.deb", b"trixie's", "VERSION_CODENAME=trixie\n")
    assert host_suite(trixie) == "trixie"

    def download(argv: list[str]) -> None:       # what `apt-get download` in the image leaves
        out = Path(argv[argv.index("-v") + 1].split(":")[0])
        (out / "prometheus_2.42.0+ds-5_amd64.deb").write_bytes(b"bookworm's")

    got = fetch_deb("prometheus", tmp_path / "cache", "bookworm", "llmops/base-bookworm:latest", download, archives, trixie)
    assert got.read_bytes() == b"bookworm's"
    argv = download_argv("prometheus", tmp_path, "llmops/base-bookworm:latest")
    assert argv[-1] == "prometheus" and "prometheus" not in argv[-3]     # an argument, not in the script
    with pytest.raises(ValueError):
        download_argv("x; rm -rf /", tmp_path, "img")


def test_the_prometheus_image_is_an_optional_recipe_from_the_deb() -> None:
    from llmops.build import RECIPES

    r = next(r for r in RECIPES if r.name == "prometheus")
    assert r.optional and r.debs == ["prometheus"] and r.base == "llmops/base-bookworm:latest"
    assert [x.name for x in RECIPES if x.optional] == ["prometheus"]     # `llmops build` builds the rest as before
    dockerfile = (ROOT / "compose" / "images" / "prometheus" / "Dockerfile").read_text()
    steps = [x for x in dockerfile.splitlines() if not x.startswith("#")]
    assert any("dpkg-deb -x /debs/prometheus.deb" in x for x in steps)
    assert not any("apt-get" in x for x in steps)          # nothing fetched while the image builds
    import yaml

    svc = yaml.safe_load((ROOT / "compose" / "monitoring.yml").read_text())["services"]["prometheus"]
    assert svc["image"] == r.tag and svc["profiles"] == ["monitoring"] and svc["network_mode"] == "host"
