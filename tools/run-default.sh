#!/usr/bin/env bash
# The main job on the embedded default, from a fresh clone: installs what is missing, builds,
# creates the built-in tiny Nemotron-H model and shows its summary.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install-deps.sh
BUILD_DIR=build bash tools/build.sh
model_dir=${TANDEM_MODEL_DIR:-build/models/tiny}
./build/bin/tandem make-tiny-model "$model_dir" --seed 0
./build/bin/tandem inspect "$model_dir"
