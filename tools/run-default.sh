#!/usr/bin/env bash
# The main job on the embedded default, from a fresh clone: installs what is missing, builds,
# creates the built-in tiny Nemotron-H model, shows its summary and generates from it on the CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install-deps.sh
BUILD_DIR=build bash tools/build.sh
model_dir=${TANDEM_MODEL_DIR:-build/models/tiny}
./build/bin/tandem make-tiny-model "$model_dir" --seed 0
./build/bin/tandem inspect "$model_dir"
echo "generate (greedy, 16 tokens) from prompt ids 1,2,3,4,5:"
./build/bin/tandem generate --model "$model_dir" --tokens 1,2,3,4,5 --max-new-tokens 16 --ignore-eos
