"""build.py's pure parts: where the Debian mirror comes from, and the argv it hands to processes
(no shell script with a value pasted into it).  Nothing here builds an image."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from llmops.build import (MIRROR_VAR, WHEEL_SCRIPT, debian_mirror, debootstrap_argv, mirror_from_apt_sources,
                          wheelhouse_argv)
from llmops.errors import EnvironmentProblem, ExitCode

ROOT = Path(__file__).resolve().parents[1]
SITE = "http://mirror.example.internal/debian"


def sources(tmp_path: Path, **files: str) -> tuple[Path, Path]:
    """An apt layout in tmp_path: sources.list.d/<name> files and an empty sources.list."""
    d = tmp_path / "sources.list.d"
    d.mkdir()
    for name, text in files.items():
        (d / name.replace("_", ".")).write_text(text)
    (tmp_path / "sources.list").write_text("")
    return d, tmp_path / "sources.list"


def test_mirror_from_env_var_wins(tmp_path: Path) -> None:
    srcs = sources(tmp_path, debian_sources="Types: deb\nURIs: http://apt.example/debian\nSuites: bookworm\n")
    assert debian_mirror({MIRROR_VAR: f" {SITE} "}, srcs) == SITE


def test_mirror_from_apt_sources(tmp_path: Path) -> None:
    # deb822 and one-line formats; other repositories and the security archive are passed over
    srcs = sources(tmp_path,
                   a_nodesource_list="deb [signed-by=/k.gpg] https://deb.nodesource.example/node_20.x nodistro main\n",
                   b_security_sources="Types: deb\nURIs: http://sec.example/debian-security\n",
                   c_debian_sources="Types: deb\nURIs: http://apt.example/debian\nSuites: bookworm\n")
    assert debian_mirror({}, srcs) == "http://apt.example/debian"
    (srcs[0] / "c.debian.sources").unlink()
    srcs[1].write_text("# comment\ndeb [arch=amd64] http://old.example/ubuntu jammy main\n")
    assert debian_mirror({MIRROR_VAR: "  "}, srcs) == "http://old.example/ubuntu"


def test_no_mirror_is_an_environment_error_naming_the_variable(tmp_path: Path) -> None:
    srcs = sources(tmp_path, nodesource_list="deb https://deb.nodesource.example/node_20.x nodistro main\n")
    assert mirror_from_apt_sources(srcs) is None
    with pytest.raises(EnvironmentProblem) as e:
        debian_mirror({}, srcs)
    assert e.value.exit_code == ExitCode.ENVIRONMENT
    assert MIRROR_VAR in str(e.value) and "\n" not in str(e.value)
    # missing apt folders are "no sources", not a crash
    with pytest.raises(EnvironmentProblem):
        debian_mirror({}, (tmp_path / "nope.d", tmp_path / "nope.list"))


def test_no_package_host_in_the_code() -> None:
    hits = subprocess.run(["grep", "-rn", "deb.debian.org", str(ROOT / "src"), str(ROOT / "scripts")],
                          capture_output=True, text=True)
    assert hits.stdout == "", hits.stdout


def test_debootstrap_path_is_an_argument_not_script(tmp_path: Path) -> None:
    root = tmp_path / 'odd "dir" $(touch pwned) ;'
    root.mkdir()
    (root / "half-made").write_text("x")
    argv = debootstrap_argv("bookworm", root, SITE)
    assert argv[:3] == ["sh", "-c", 'rm -rf -- "$1" && shift && exec "$@"']
    assert str(root) not in argv[2]
    assert argv[4:] == [str(root), "debootstrap", "--variant=minbase",
                        "--include=python3,python3-venv,python3-pip,ca-certificates,curl,bash",
                        "bookworm", str(root), SITE]
    # run the wrapper for real with `echo` in debootstrap's place: the odd path is cleared and passed intact
    run = [*argv[:5], "echo", *argv[6:]]
    out = subprocess.run(run, capture_output=True, text=True, cwd=tmp_path, check=True).stdout
    assert not root.exists() and not (tmp_path / "pwned").exists()
    assert out.strip() == " ".join(argv[6:])


def test_wheelhouse_script_is_constant(tmp_path: Path) -> None:
    links = [tmp_path / "l0", tmp_path / "l 1 $(x)"]
    for d in links:
        d.mkdir()
    req, house, ca = tmp_path / "req.txt", tmp_path / "house", tmp_path / "ca.crt"
    argv = wheelhouse_argv(req, house, ca, [str(links[0]), str(tmp_path / "missing"), str(links[1])])
    assert argv[-3:] == ["sh", "-c", WHEEL_SCRIPT]
    assert str(tmp_path) not in WHEEL_SCRIPT and "{" not in WHEEL_SCRIPT
    assert argv[:3] == ["docker", "run", "--rm"] and argv[-4] == "llmops/base-bookworm:latest"
    pairs = list(zip(argv[3:-4:2], argv[4:-4:2]))
    assert ("-v", f"{req}:/req.txt:ro") in pairs and ("-v", f"{house}:/wheels") in pairs
    assert ("-v", f"{links[1]}:/links1:ro") in pairs and ("-e", "PIP_FIND_LINKS=/links0 /links1") in pairs
    assert ("-e", "PIP_CERT=/host-ca.crt") in pairs
    bare = wheelhouse_argv(req, house, None, [])
    assert not any(x.startswith(("PIP_FIND_LINKS", "PIP_CERT")) for x in bare)
