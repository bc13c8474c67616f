#!/usr/bin/env bash
# GPU check of the CUDA model backend (model/cuda/) in ONE `device` call: the model tests against
# the CPU model (tiny presets, f32 + bf16, several mixed steps; greedy generation) and the
# end-to-end benchmark of Nemotron-H 8B shapes with synthetic weights (decode steps at batch
# 1/16/64/256 over a 1024-token context, one 8192-token prefill); results under $OUT.
#
# Like scripts/gpu-check.sh, the binaries are built HERE and carried (the GPU machine lacks the
# C++ dev packages):
#   1. here:        scripts/gpu-model-check.sh --prepare      (RelWithDebInfo build in
#                   $BUILD_DIR, default build-cudamodel; bundle into build-gpu-model-carry/)
#   2. device tool: run(command="bash scripts/gpu-model-check.sh",
#                       carry=["build-gpu-model-carry"], timeout_s=420)
# Environment: LAYERS (default 12: "M-M-M-M*-M-M", every block kind; 0 = all 52 layers, ~16 GB
# of bf16 weights generated on the host), DTYPE (bf16).
# Outputs ($OUT): env.txt, model_tests.log, cuda_model_test.xml, model_bench.log, model_cuda.json.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUNDLE=$ROOT/build-gpu-model-carry
BINS=(cuda_model_test cuda_model_host_test cuda_model_bench)

if [[ "${1:-}" == "--prepare" ]]; then
  set -e
  BUILD=${BUILD_DIR:-$ROOT/build-cudamodel}
  cmake -S "$ROOT" -B "$BUILD" -G Ninja -DTANDEM_CUDA=ON -DTANDEM_BENCH=ON \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  ninja -C "$BUILD" -j2 "${BINS[@]}"
  rm -rf "$BUNDLE"
  mkdir -p "$BUNDLE/bin" "$BUNDLE/lib" "$BUNDLE/lib-compat"
  for b in "${BINS[@]}"; do
    cp "$BUILD/bin/$b" "$BUNDLE/bin/"
    strip --strip-debug "$BUNDLE/bin/$b"
  done
  for b in "${BINS[@]}"; do ldd "$BUNDLE/bin/$b"; done | awk '/=>/ {print $3}' | sort -u |
    grep -v -E '/(libc|libm|libdl|libpthread|librt|ld-linux[^/]*)\.so|/usr/local/cuda' |
    grep -v -E 'libstdc\+\+|libgcc_s' | xargs -r -I{} cp -L {} "$BUNDLE/lib/"
  for lib in libstdc++.so.6 libgcc_s.so.1; do
    cp -L "$(ldd "$BUNDLE/bin/cuda_model_test" | awk -v l="$lib" '$1 == l {print $3}')" \
      "$BUNDLE/lib-compat/" 2>/dev/null || true
  done
  # The 8B config travels with the tree (configs/); the tests read TANDEM_SOURCE_DIR/configs.
  git -C "$ROOT" rev-parse HEAD >"$BUNDLE/COMMIT"
  du -sh "$BUNDLE"
  echo "bundle ready: run scripts/gpu-model-check.sh on the device with carry [\"build-gpu-model-carry\"]"
  exit 0
fi

OUT=${OUT:-$ROOT/gpu-model-check-out}
mkdir -p "$OUT"
START=$(date +%s)
elapsed() { echo $(($(date +%s) - START)); }
{
  echo "date: $(date -u)"; echo "host: $(uname -a)"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1
  echo "bundle commit: $(cat "$BUNDLE/COMMIT" 2>/dev/null || echo none)"
  echo "tree commit: $(git rev-parse HEAD 2>/dev/null || echo unknown)"
} >"$OUT/env.txt"
cat "$OUT/env.txt"
if [[ ! -x "$BUNDLE/bin/cuda_model_test" ]]; then
  echo "no carried bundle: run scripts/gpu-model-check.sh --prepare here and carry build-gpu-model-carry"
  exit 2
fi
BIN=$BUNDLE/bin
CUDA_LIBS=""
for d in /usr/local/cuda/lib64 /usr/local/cuda/lib; do [[ -d $d ]] && CUDA_LIBS="$CUDA_LIBS:$d"; done
export LD_LIBRARY_PATH="$BUNDLE/lib${CUDA_LIBS}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
if ldd "$BIN/cuda_model_test" 2>&1 | grep -q -E "GLIBCXX|not found"; then
  export LD_LIBRARY_PATH="$BUNDLE/lib-compat:$LD_LIBRARY_PATH"
fi
ldd "$BIN/cuda_model_test" | grep -E "not found|cublas|cudart" | tee -a "$OUT/env.txt"

# The tests look for configs/ under the source dir compiled in; point them at this tree.
export TANDEM_SOURCE_DIR_OVERRIDE=$ROOT
echo "== model tests ($(elapsed)s)"
timeout 60 "$BIN/cuda_model_host_test" >"$OUT/model_tests.log" 2>&1
HOST_RC=$?
timeout 180 "$BIN/cuda_model_test" --gtest_output=xml:"$OUT/cuda_model_test.xml" \
  >>"$OUT/model_tests.log" 2>&1
TEST_RC=$?
grep -E "^\[  (FAILED|SKIPPED|PASSED) |Failure|row " "$OUT/model_tests.log" | head -60
if nvidia-smi -L >/dev/null 2>&1 && grep -q "^\[  SKIPPED \]" "$OUT/model_tests.log"; then
  echo "a GPU is present but tests skipped: counting that as a failure"
  TEST_RC=3
fi

echo "== model bench ($(elapsed)s)"
timeout 240 "$BIN/cuda_model_bench" --synthetic "$ROOT/configs/nemotron-h-8b" \
  --layers "${LAYERS:-12}" --dtype "${DTYPE:-bf16}" --out "$OUT/model_cuda.json" \
  >"$OUT/model_bench.log" 2>&1
BENCH_RC=$?
cat "$OUT/model_bench.log" | tail -20

echo "== summary ($(elapsed)s): host tests rc=$HOST_RC, gpu model tests rc=$TEST_RC, bench rc=$BENCH_RC"
[[ $HOST_RC == 0 && $TEST_RC == 0 && $BENCH_RC == 0 ]]
