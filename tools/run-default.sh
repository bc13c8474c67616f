#!/usr/bin/env bash
# The main job on the embedded default, from a fresh clone: installs what is missing, builds, shows
# the built-in model (a small Nemotron-H trained on Jane Austen, models/default/, docs/models.md),
# its perplexity on held-out text, and serves it: a streamed generation of readable English.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install-deps.sh
BUILD_DIR=build bash tools/build.sh
./build/bin/tandem inspect models/default
echo "perplexity of held-out text (the last chapters of Persuasion, never trained on):"
./build/bin/tandem perplexity --text-file models/default/heldout.txt

# The service: `tandem serve` with no arguments runs the built-in model (embedded in the
# executable) as coordinator + tp=2 x pp=2 worker processes on localhost; then a streamed
# generation through the public tandem.v1 API, then a clean shutdown.
serve_log=$(mktemp)
XDG_CACHE_HOME=${XDG_CACHE_HOME:-$PWD/build/cache} setsid ./build/bin/tandem serve --port 0 >"$serve_log" 2>&1 &
serve_pid=$!
trap 'kill -TERM -"$serve_pid" 2>/dev/null || true; wait "$serve_pid" 2>/dev/null || true; rm -f "$serve_log"' EXIT
# `listening on` is printed once every worker has loaded and health is SERVING.
for _ in $(seq 1 600); do
  grep -q "listening on" "$serve_log" && break
  kill -0 "$serve_pid" 2>/dev/null || { cat "$serve_log" >&2; echo "tandem serve exited" >&2; exit 1; }
  sleep 0.2
done
address=$(grep -o "listening on [0-9.]*:[0-9]*" "$serve_log" | awk '{print $3}')
echo "tandem serve is up on $address; streaming a continuation of \"Once upon a time\":"
./build/bin/tandem generate "Once upon a time" --stream --server "$address" --max-new-tokens 48 \
  --temperature 0.7 --top-p 0.9 --seed 1 --ignore-eos
kill -TERM "$serve_pid"
wait "$serve_pid" || true
trap - EXIT
rm -f "$serve_log"
