"""Debian packages an image recipe takes from the archive as .deb files (the Prometheus image's
`prometheus`), cached under `$LLMOPS_CACHE/debs/<suite>` like every other download (one folder
per suite: a .deb of the host's own release must not land in a bookworm image).

Where a .deb comes from, in order: the cache; the host's own apt cache when the host runs the
base image's suite (the same package apt would install there); else `apt-get download` inside
the base image itself, whose sources debootstrap wrote (so the suite is the image's, whatever
the host runs), with retries.  scripts/lib.sh fills `debs/<host suite>` the same way for the
host's promtool.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

APT_ARCHIVES = Path("/var/cache/apt/archives")
OS_RELEASE = Path("/etc/os-release")
_PACKAGE = re.compile(r"[a-z0-9][a-z0-9+.-]+")


def cached_deb(package: str, folder: Path) -> Path | None:
    """The newest-named `<package>_*.deb` in `folder`, or None."""
    if not _PACKAGE.fullmatch(package):
        raise ValueError(f"not a Debian package name: {package!r}")
    found = sorted(folder.glob(f"{package}_*.deb")) if folder.is_dir() else []
    return found[-1] if found else None


def host_suite(os_release: Path = OS_RELEASE) -> str | None:
    try:
        text = os_release.read_text()
    except OSError:
        return None
    m = re.search(r"^VERSION_CODENAME=\"?([a-z]+)\"?$", text, re.M)
    return m.group(1) if m else None


def download_argv(package: str, out: Path, image: str) -> list[str]:
    """`apt-get download` in the base image, into `out` (a mount; the package name is checked and
    passed as an argument, never pasted into the script)."""
    if not _PACKAGE.fullmatch(package):
        raise ValueError(f"not a Debian package name: {package!r}")
    script = 'apt-get update -qq && cd /out && apt-get download -q "$1"'
    return ["docker", "run", "--rm", "-v", f"{out}:/out", image, "sh", "-c", script, "sh", package]


def fetch_deb(package: str, cache: Path, suite: str, image: str, run: Callable[[list[str]], object],
              archives: Path = APT_ARCHIVES, os_release: Path = OS_RELEASE) -> Path:
    """The package's .deb in `cache/debs/<suite>`, fetched once.  `run(argv)` runs a network step (with
    retries); it is not called when the cache or the host's apt cache has the file."""
    import shutil

    folder = cache / "debs" / suite
    folder.mkdir(parents=True, exist_ok=True)
    found = cached_deb(package, folder)
    if found is not None:
        return found
    host = cached_deb(package, archives) if host_suite(os_release) == suite else None
    if host is not None:
        shutil.copy2(host, folder / host.name)
        return folder / host.name
    run(download_argv(package, folder, image))
    found = cached_deb(package, folder)
    if found is None:
        raise FileNotFoundError(f"apt-get download {package} left no {package}_*.deb in {folder}")
    return found
