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

# The service: coordinator + tp=2 x pp=2 worker processes on localhost, then a streamed
# generation through the public tandem.v1 API, then a clean shutdown.
serve_log=$(mktemp)
XDG_CACHE_HOME=${XDG_CACHE_HOME:-$PWD/build/cache} setsid ./build/bin/tandem serve --port 0 >"$serve_log" &
serve_pid=$!
trap 'kill -TERM -"$serve_pid" 2>/dev/null || true; wait "$serve_pid" 2>/dev/null || true; rm -f "$serve_log"' EXIT
# `listening on` is printed once every worker has loaded and health is SERVING.
for _ in $(seq 1 600); do
  grep -q "listening on" "$serve_log" && break
  kill -0 "$serve_pid" 2>/dev/null || { echo "tandem serve exited" >&2; exit 1; }
  sleep 0.2
done
address=$(grep -o "listening on [0-9.]*:[0-9]*" "$serve_log" | awk '{print $3}')
echo "tandem serve is up on $address; streaming a generation:"
./build/bin/tandem generate "The quick brown fox" --stream --server "$address" --max-new-tokens 24 --ignore-eos
kill -TERM "$serve_pid"
wait "$serve_pid" || true
trap - EXIT
rm -f "$serve_log"
