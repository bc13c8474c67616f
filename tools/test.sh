#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs what is missing, builds the CPU
# configuration, checks that the CUDA configuration compiles and links (its GPU-labelled tests
# skip, saying why, where no GPU exists), then runs every test of the CPU build (CTest), then the
# Python client's and OpenAI gateway's tests (clients/python/test.sh: it pip-installs their PyPI
# dependencies into build/python-venv, so it needs network to PyPI; without it it fails within about a minute, saying so).
# This is what .ci/run runs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install-deps.sh
jobs=${TANDEM_JOBS:-$(nproc)}

echo "== build (CPU configuration)"
BUILD_DIR=build bash tools/build.sh -DTANDEM_CUDA=OFF

if [ -x /usr/local/cuda/bin/nvcc ] && [ "${TANDEM_SKIP_CUDA_BUILD:-0}" != 1 ]; then
  echo "== build (CUDA configuration: compile and link check)"
  BUILD_DIR=build-cuda bash tools/build.sh -DTANDEM_CUDA=ON -DTANDEM_BENCH=OFF
  echo "== GPU-labelled tests in the CUDA configuration (they skip without a GPU)"
  ctest --test-dir build-cuda --output-on-failure -L gpu --timeout 600 --no-tests=error
fi

echo "== tests (CPU configuration, every library)"
ctest --test-dir build --output-on-failure -j "$jobs" --timeout 600

echo "== Python client and OpenAI gateway (clients/python, against build/bin/tandem)"
TANDEM_BIN="$PWD/build/bin/tandem" bash clients/python/test.sh
echo "== deployment (tests/deploy: manifests rendered and checked, a group run from the install tree)" && bash tests/deploy/run.sh
