# Shared by scripts/certify and scripts/test: timing of phases, retries, and the setup itself.
# shellcheck shell=bash
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ "$(id -u)" = 0 ]; then DEFAULT_CACHE=/var/cache/llmops; else DEFAULT_CACHE="$HOME/.cache/llmops"; fi
export LLMOPS_CACHE="${LLMOPS_CACHE:-$DEFAULT_CACHE}"
export PIP_CACHE_DIR="${PIP_CACHE_DIR:-$LLMOPS_CACHE/pip}"   # wheels survive between runs and clones
export PIP_DISABLE_PIP_VERSION_CHECK=1
VENV="$ROOT/.venv"
LLMOPS="$VENV/bin/llmops"
T_START=$(date +%s)

phase() {  # phase NAME CMD...: run a step and print how long it took
  local name="$1"; shift
  local t0; t0=$(date +%s)
  echo "==> [$name] started at $(date -u +%H:%M:%S)"
  local rc=0
  "$@" || rc=$?
  local verdict="done"
  [ $rc -eq 3 ] && verdict="exit 3 (something skipped)"   # llmops: 3 is a skip, not a failure
  [ $rc -ne 0 ] && [ $rc -ne 3 ] && verdict="FAILED (exit $rc)"
  echo "==> [$name] $verdict in $(( $(date +%s) - t0 )) s (total $(( $(date +%s) - T_START )) s)"
  return $rc
}

pytest_verdict() {  # pytest_verdict CODE: the test command's exit status for pytest's exit CODE
  # pytest exits 5 when it collected nothing (a -k or path that matched no test): nothing was
  # tested, so that is a failure, never a pass.
  if [ "$1" -eq 5 ]; then echo "!! pytest collected no tests (exit 5): nothing was tested" >&2; fi
  return "$1"
}

retry() {  # retry CMD...: network steps get three tries with backoff
  local n=1
  until "$@"; do
    if [ $n -ge 3 ]; then echo "!! failed after $n attempts: $*" >&2; return 1; fi
    echo "!! attempt $n failed: $*; retrying in $((n * 10)) s" >&2
    sleep $((n * 10)); n=$((n + 1))
  done
}

apt_install() {  # apt_install PKG...: only what is missing, as root on Debian/Ubuntu
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "!! need packages ${missing[*]}: install them (as root: apt-get install ${missing[*]})" >&2; return 1
  fi
  retry apt-get update -qq
  DEBIAN_FRONTEND=noninteractive retry apt-get install -y -qq "${missing[@]}" >/dev/null
}

apt_download() {  # apt_download PKG: into the current folder; refresh the package lists once if needed
  apt-get download -q "$1" 2>/dev/null || { apt-get update -qq && apt-get download -q "$1"; }
}

setup_prometheus_deb() {  # Debian's prometheus .deb, extracted (never installed): promtool and prometheus for the tests
  # From $LLMOPS_CACHE/debs/<suite>, else apt's own cache, else `apt-get download` (retried);
  # extracted to $LLMOPS_PROMETHEUS_DIR (default /opt/prometheus-deb as root, else in the cache).
  local dest suite debs deb archives="${APT_ARCHIVES:-/var/cache/apt/archives}"
  if [ "$(id -u)" = 0 ]; then dest="${LLMOPS_PROMETHEUS_DIR:-/opt/prometheus-deb}"; else dest="${LLMOPS_PROMETHEUS_DIR:-$LLMOPS_CACHE/prometheus-deb}"; fi
  export LLMOPS_PROMETHEUS_DIR="$dest"
  if [ -x "$dest/usr/bin/promtool" ] && [ -x "$dest/usr/bin/prometheus" ]; then echo "already in $dest"; return 0; fi
  suite="$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-host}")" || suite=host
  debs="$LLMOPS_CACHE/debs/${suite:-host}"
  mkdir -p "$debs"
  deb="$(ls "$debs"/prometheus_*.deb 2>/dev/null | tail -n 1 || true)"
  if [ -z "$deb" ] && deb="$(ls "$archives"/prometheus_*.deb 2>/dev/null | tail -n 1)" && [ -n "$deb" ]; then
    cp "$deb" "$debs/" && deb="$debs/$(basename "$deb")"
  fi
  if [ -z "$deb" ]; then
    command -v apt-get >/dev/null || { echo "!! no prometheus .deb in $debs or $archives, and no apt-get to fetch one" >&2; return 1; }
    (cd "$debs" && retry apt_download prometheus) || return 1
    deb="$(ls "$debs"/prometheus_*.deb | tail -n 1)"
  fi
  rm -rf "$dest.part" && mkdir -p "$dest.part" && dpkg-deb -x "$deb" "$dest.part" && rm -rf "$dest" && mv "$dest.part" "$dest"
  echo "$(basename "$deb") extracted to $dest: $("$dest/usr/bin/promtool" --version 2>&1 | head -n 1)"
}

setup_venv() {
  mkdir -p "$PIP_CACHE_DIR"
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
  retry "$VENV/bin/pip" install -q --retries 5 --timeout 60 -e "$ROOT[test]"
}

setup_all() {  # engine, Python environment, images: everything the stack needs, idempotent
  phase "python venv" setup_venv
  phase "docker engine" "$LLMOPS" engine --install
  phase "offline image build" "$LLMOPS" --project-dir "$ROOT" build
}
