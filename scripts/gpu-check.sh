#!/usr/bin/env bash
# GPU check of the CUDA kernels in ONE `device` call (well under 8 minutes): the GPU tests, a
# compute-sanitizer pass, the GPU benchmarks (copy bandwidth + cuBLASLt bf16 peak measured in the
# same run, kernels reported as fractions of them); results under $OUT.
#
# The GPU machine has nvcc/CUDA 13 but none of Tandem's C++ dev packages (Abseil, GTest, OpenBLAS,
# nlohmann-json ...), so the binaries are built HERE and carried:
#   1. here:        scripts/gpu-check.sh --prepare
#                   (builds cuda_kernels_test, cuda_host_test, cuda_bench in build-cuda-k and bundles
#                    them with their non-CUDA shared libraries into build-gpu-carry/, ~45 MB; the
#                    /build*/ pattern of .gitignore keeps it out of git)
#   2. device tool: run(command="bash scripts/gpu-check.sh", carry=["build-gpu-carry"],
#                       timeout_s=480)
# Without build-gpu-carry/ the script tries a TANDEM_KERNELS_ONLY build on the GPU machine, which
# needs those dev packages there (it says which are missing and stops).
# Outputs ($OUT, at most 8 files): env.txt, tests.log, cuda_kernels_test.xml, sanitizer.log,
# bench.log, kernels_cuda.json.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUNDLE=$ROOT/build-gpu-carry
BINS=(cuda_kernels_test cuda_host_test cuda_validation_test cuda_bench)

if [[ "${1:-}" == "--prepare" ]]; then
  set -e
  cmake -S "$ROOT" -B "$ROOT/build-cuda-k" -G Ninja -DTANDEM_CUDA=ON -DTANDEM_BENCH=ON \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  ninja -C "$ROOT/build-cuda-k" -j2 "${BINS[@]}"
  rm -rf "$BUNDLE"
  mkdir -p "$BUNDLE/bin" "$BUNDLE/lib" "$BUNDLE/lib-compat"
  for b in "${BINS[@]}"; do
    cp "$ROOT/build-cuda-k/bin/$b" "$BUNDLE/bin/"
    strip --strip-debug "$BUNDLE/bin/$b"
  done
  # Shared libraries the GPU machine may lack: everything but glibc, the C++ runtime and CUDA.
  for b in "${BINS[@]}"; do ldd "$BUNDLE/bin/$b"; done | awk '/=>/ {print $3}' | sort -u |
    grep -v -E '/(libc|libm|libdl|libpthread|librt|ld-linux[^/]*)\.so|/usr/local/cuda' |
    grep -v -E 'libstdc\+\+|libgcc_s' | xargs -r -I{} cp -L {} "$BUNDLE/lib/"
  # The C++ runtime, used only if the GPU machine's one is older than this machine's.
  for lib in libstdc++.so.6 libgcc_s.so.1; do
    cp -L "$(ldd "$BUNDLE/bin/cuda_kernels_test" | awk -v l="$lib" '$1 == l {print $3}')" \
      "$BUNDLE/lib-compat/" 2>/dev/null || true
  done
  git -C "$ROOT" rev-parse HEAD >"$BUNDLE/COMMIT"
  du -sh "$BUNDLE"
  echo "bundle ready: run scripts/gpu-check.sh on the device with carry [\"build-gpu-carry\"]"
  exit 0
fi

OUT=${OUT:-$ROOT/gpu-check-out}
mkdir -p "$OUT"
START=$(date +%s)
elapsed() { echo $(($(date +%s) - START)); }
{
  echo "date: $(date -u)"; echo "host: $(uname -a)"
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.mem --format=csv 2>&1
  nvcc --version 2>&1 | tail -2
  echo "bundle commit: $(cat "$BUNDLE/COMMIT" 2>/dev/null || echo none)"
  echo "tree commit: $(git rev-parse HEAD 2>/dev/null || echo unknown)"
} >"$OUT/env.txt"
cat "$OUT/env.txt"

# CUDA runtime libraries: the toolkit's, else PyTorch's pip wheels.
CUDA_LIBS=""
for d in /usr/local/cuda/lib64 /usr/local/cuda/lib; do [[ -d $d ]] && CUDA_LIBS="$CUDA_LIBS:$d"; done
PYLIBS=$(python3 - 2>/dev/null <<'PY'
import importlib, os
dirs = []
for m in ("nvidia.cublas", "nvidia.cuda_runtime"):
    try:
        mod = importlib.import_module(m)
        for p in mod.__path__:
            dirs.append(os.path.join(p, "lib"))
    except Exception:
        pass
print(":".join(dirs))
PY
)
[[ -n "$PYLIBS" ]] && CUDA_LIBS="$CUDA_LIBS:$PYLIBS"

if [[ -x "$BUNDLE/bin/cuda_kernels_test" ]]; then
  BIN=$BUNDLE/bin
  export LD_LIBRARY_PATH="$BUNDLE/lib${CUDA_LIBS}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  if ldd "$BIN/cuda_kernels_test" 2>&1 | grep -q -E "GLIBCXX|not found"; then
    echo "system C++ runtime too old or libraries missing: adding lib-compat"
    export LD_LIBRARY_PATH="$BUNDLE/lib-compat:$LD_LIBRARY_PATH"
  fi
  ldd "$BIN/cuda_kernels_test" | grep -E "not found|cublas|cudart" | tee -a "$OUT/env.txt"
else
  echo "no carried bundle: building a TANDEM_KERNELS_ONLY configuration here"
  B=/tmp/tandem-gpu-build
  if ! cmake -S "$ROOT" -B $B -G Ninja -DTANDEM_CUDA=ON -DTANDEM_KERNELS_ONLY=ON \
      -DTANDEM_BENCH=ON >"$OUT/tests.log" 2>&1; then
    echo "configure failed (missing dev packages on this machine?):"; grep -E "Could not|not found|Error" "$OUT/tests.log" | head -20
    echo "run scripts/gpu-check.sh --prepare on the build machine and carry build-gpu-carry"
    exit 2
  fi
  ninja -C $B -j16 "${BINS[@]}" >>"$OUT/tests.log" 2>&1 || { tail -40 "$OUT/tests.log"; exit 2; }
  BIN=$B/bin
  export LD_LIBRARY_PATH="${CUDA_LIBS#:}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi

# 1. Tests (host-side logic, then every op against the CPU reference, f32 and bf16).
echo "== tests ($(elapsed)s)"
timeout 60 "$BIN/cuda_host_test" >"$OUT/tests.log" 2>&1
HOST_RC=$?
timeout 60 "$BIN/cuda_validation_test" >>"$OUT/tests.log" 2>&1 || HOST_RC=$?
timeout 240 "$BIN/cuda_kernels_test" --gtest_output=xml:"$OUT/cuda_kernels_test.xml" \
  >>"$OUT/tests.log" 2>&1
TEST_RC=$?
grep -E "^\[  (FAILED|SKIPPED|PASSED) |Failure|differ" "$OUT/tests.log" | head -60
if nvidia-smi -L >/dev/null 2>&1 && grep -q "^\[  SKIPPED \]" "$OUT/tests.log"; then
  echo "a GPU is present but tests skipped: counting that as a failure"
  TEST_RC=3
fi

# 2. Benchmarks (ceilings first, in the same process).
echo "== bench ($(elapsed)s)"
timeout 200 "$BIN/cuda_bench" --out="$OUT/kernels_cuda.json" >"$OUT/bench.log" 2>&1
BENCH_RC=$?

# 3. compute-sanitizer on the kernels with shared memory and atomics (memcheck + racecheck),
#    only with time to spare.
SAN_RC=skipped
if command -v compute-sanitizer >/dev/null && (($(elapsed) < 300)); then
  echo "== sanitizer ($(elapsed)s)"
  F='CudaOpTest/bf16.SsdChunkScan*:CudaAttentionTest/bf16.*:CudaSamplingTest.*:CudaOpTest/bf16.CausalConv1d*'
  { timeout 90 compute-sanitizer --tool memcheck --error-exitcode 9 "$BIN/cuda_kernels_test" \
      --gtest_filter="$F"; echo "memcheck rc=$?"
    timeout 90 compute-sanitizer --tool racecheck --error-exitcode 9 "$BIN/cuda_kernels_test" \
      --gtest_filter="$F"; echo "racecheck rc=$?"; } >"$OUT/sanitizer.log" 2>&1
  SAN_RC=$(grep -o "rc=[0-9]*" "$OUT/sanitizer.log" | tr '\n' ' ')
fi

echo
echo "== summary ($(elapsed)s): host tests rc=$HOST_RC, gpu tests rc=$TEST_RC, bench rc=$BENCH_RC, sanitizer $SAN_RC"
grep -E "^\[==========\]|^\[  PASSED|^\[  FAILED" "$OUT/tests.log" | tail -6
sed -n '/^kernel/,$p' "$OUT/bench.log" 2>/dev/null || tail -20 "$OUT/bench.log"
grep -E "ceilings|device:" "$OUT/bench.log"
[[ $HOST_RC == 0 && $TEST_RC == 0 && $BENCH_RC == 0 ]]
