#!/usr/bin/env bash
# The prefix-cache benchmark (issue 15, docs/benchmarks.md "Prefix caching"): the same seeded
# shared-prefix workload against `tandem serve` with the prefix cache off and then on, in one run,
# written as one JSON with both results and the ratio of their TTFTs.
#
#   bench/prefix_cache.sh [--build DIR] [--out FILE.json] [--model DIR] [options]
#
# Without --model it writes the random-weight "bench-512" checkpoint (core/tiny_model.h) to a
# temporary directory. Each server is started and stopped by serve_loadgen (its own process group).
# Never a test: it asserts no time. Needs python3 (to combine the two loadgen JSONs).
set -euo pipefail

usage() {
  cat <<'EOF'
usage: bench/prefix_cache.sh [options]
  --build DIR           build directory with bin/tandem and bin/serve_loadgen (default build)
  --out FILE.json       the combined result (default bench/results/prefix_cache_cpu.json)
  --model DIR           an existing checkpoint (default: make-tiny-model --preset PRESET)
  --preset NAME         make-tiny-model preset (default bench-512)
  --dtype D             make-tiny-model dtype: bf16 or f32 (default bf16)
  --shared-prefix N     tokens every prompt shares (default 1024)
  --unique N            unique tokens after the prefix (default 32)
  --requests M          measured requests per run (default 32)
  --warmup K            requests before measuring, one by one (default 3)
  --concurrency C       closed-loop clients (default 2)
  --max-new-tokens N    generated tokens per request (default 8)
  --seed S              workload seed (default 1)
  --serve-args "ARGS"   arguments of both servers (default "--tp 1 --pp 1")
  --off-args "ARGS"     extra arguments of the cache-off server (default "--prefix-cache off")
  --on-args "ARGS"      extra arguments of the cache-on server (default "--prefix-cache on")
EOF
}

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
build="$root/build"
out="$root/bench/results/prefix_cache_cpu.json"
model=""
preset="bench-512"
dtype="bf16"
shared=1024
unique=32
requests=32
warmup=3
concurrency=2
new_tokens=8
seed=1
serve_args="--tp 1 --pp 1"
off_args="--prefix-cache off"
on_args="--prefix-cache on"
command_line="bench/prefix_cache.sh$(printf ' %q' "$@")"

while [[ $# -gt 0 ]]; do
  flag="$1"
  case "$flag" in
    -h | --help)
      usage
      exit 0
      ;;
    --build | --out | --model | --preset | --dtype | --shared-prefix | --unique | --requests | \
      --warmup | --concurrency | --max-new-tokens | --seed | --serve-args | --off-args | --on-args)
      if [[ $# -lt 2 ]]; then
        echo "prefix_cache.sh: $flag needs a value" >&2
        exit 2
      fi
      value="$2"
      shift 2
      ;;
    *)
      echo "prefix_cache.sh: unknown argument '$flag'" >&2
      usage >&2
      exit 2
      ;;
  esac
  case "$flag" in
    --build) build="$value" ;;
    --out) out="$value" ;;
    --model) model="$value" ;;
    --preset) preset="$value" ;;
    --dtype) dtype="$value" ;;
    --shared-prefix) shared="$value" ;;
    --unique) unique="$value" ;;
    --requests) requests="$value" ;;
    --warmup) warmup="$value" ;;
    --concurrency) concurrency="$value" ;;
    --max-new-tokens) new_tokens="$value" ;;
    --seed) seed="$value" ;;
    --serve-args) serve_args="$value" ;;
    --off-args) off_args="$value" ;;
    --on-args) on_args="$value" ;;
  esac
done

tandem="$build/bin/tandem"
loadgen="$build/bin/serve_loadgen"
for exe in "$tandem" "$loadgen"; do
  if [[ ! -x "$exe" ]]; then
    echo "prefix_cache.sh: $exe is not an executable (build tandem and serve_loadgen, or --build)" >&2
    exit 2
  fi
done
if ! command -v python3 >/dev/null; then
  echo "prefix_cache.sh: python3 is needed to combine the results" >&2
  exit 2
fi

# The source the binaries were presumably built from (a dirty tree is marked).
commit="$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)"
if ! git -C "$root" diff --quiet HEAD 2>/dev/null; then commit="$commit-dirty"; fi
tmp="$(mktemp -d /tmp/prefix_cache_bench.XXXXXX)"
trap 'rm -rf "$tmp"' EXIT
if [[ -z "$model" ]]; then
  model="$tmp/model"
  "$tandem" make-tiny-model "$model" --preset "$preset" --dtype "$dtype" --seed 0
  model_source="tandem make-tiny-model --preset $preset --dtype $dtype --seed 0"
else
  model_source="given: $model"
fi

# One loadgen run: $1 = name (off/on), $2 = the extra serve arguments.
run() {
  local name="$1" extra="$2"
  echo "prefix_cache.sh: run '$name': tandem serve $serve_args --model $model $extra" >&2
  "$loadgen" --tandem "$tandem" --serve-args "$serve_args --model $model $extra" \
    --shared-prefix "$shared" --prompt-len "$unique" --max-new-tokens "$new_tokens" \
    --requests "$requests" --warmup "$warmup" --concurrency "$concurrency" --seed "$seed" \
    --label "prefix cache $name" --out "$tmp/$name.json"
}
run off "$off_args"
run on "$on_args"

mkdir -p "$(dirname "$out")"
python3 - "$tmp/off.json" "$tmp/on.json" "$model/config.json" "$out" "$command_line" \
  "$model_source" "$off_args" "$on_args" "$commit" <<'EOF'
import json
import sys

off_path, on_path, config_path, out_path, command, model_source, off_args, on_args, commit = sys.argv[1:]
off = json.load(open(off_path))
on = json.load(open(on_path))
config = json.load(open(config_path))


def ratio(a, b):
    return round(a / b, 4) if b else None


def run_summary(r, extra_args):
    res = r["results"]
    return {
        "extra_serve_args": extra_args,
        "server_command": r["config"]["server"],
        "loadavg_before": r["machine"]["loadavg_before"],
        "ok": res["ok"],
        "errors": res["errors"],
        "wall_s": res["wall_s"],
        "prompt_tokens": res["prompt_tokens"],
        "cached_tokens": res["cached_tokens"],
        "cached_share": res["cached_share"],
        "requests_with_cached_tokens": res["requests_with_cached_tokens"],
        "requests_per_s": res["requests_per_s"],
        "prompt_tokens_per_s": res["prompt_tokens_per_s"],
        "generated_tokens_per_s": res["generated_tokens_per_s"],
        "ttft_ms": res["ttft_ms"],
        "e2e_ms": res["e2e_ms"],
        "itl_ms": res["itl_ms"],
        "server_first_token_ms": res["server_first_token_ms"],
        "server_steps": res["server_steps"],
        "server_preemptions": res["server_preemptions"],
        "prefix_cache": r.get("prefix_cache"),
    }


o, n = off["results"], on["results"]
keys = ("hidden_size", "num_hidden_layers", "hybrid_override_pattern", "intermediate_size",
        "num_attention_heads", "num_key_value_heads", "head_dim", "mamba_num_heads",
        "mamba_head_dim", "n_groups", "ssm_state_size", "chunk_size", "vocab_size",
        "max_position_embeddings", "torch_dtype")
result = {
    "benchmark": "prefix_cache",
    "date": on["date"],
    "commit": commit,
    "command": command,
    "machine": off["machine"],
    "model": {"source": model_source, **{k: config.get(k) for k in keys}},
    "server": off["server"],
    "workload": {
        "shared_prefix": off["config"]["shared_prefix"],
        "unique_tokens": off["config"]["prompt_len"][0],
        "requests": off["config"]["requests"],
        "warmup": off["config"]["warmup"],
        "concurrency": off["config"]["concurrency"],
        "max_new_tokens": off["config"]["max_new_tokens"][0],
        "seed": off["config"]["seed"],
        "ignore_eos": True,
        "sampling": "greedy",
    },
    "cache_off": run_summary(off, off_args),
    "cache_on": run_summary(on, on_args),
    "comparison": {
        "ttft_p50_on_over_off": ratio(n["ttft_ms"]["p50"], o["ttft_ms"]["p50"]),
        "ttft_p99_on_over_off": ratio(n["ttft_ms"]["p99"], o["ttft_ms"]["p99"]),
        "ttft_mean_on_over_off": ratio(n["ttft_ms"]["mean"], o["ttft_ms"]["mean"]),
        "requests_per_s_on_over_off": ratio(n["requests_per_s"], o["requests_per_s"]),
        # TTFT scaling with the computed share of the prompt would give this ratio.
        "uncached_share_on": round(1.0 - n["cached_share"], 4),
    },
}
with open(out_path, "w") as f:
    json.dump(result, f, indent=2)
    f.write("\n")
c = result["comparison"]
print(f"prefix_cache.sh: TTFT p50 {o['ttft_ms']['p50']:.1f} ms off, {n['ttft_ms']['p50']:.1f} ms on "
      f"(x{c['ttft_p50_on_over_off']}); p99 {o['ttft_ms']['p99']:.1f} / {n['ttft_ms']['p99']:.1f} ms; "
      f"cached share on {n['cached_share']:.3f}; requests/s {o['requests_per_s']:.3f} off, "
      f"{n['requests_per_s']:.3f} on; wrote {out_path}")
if n["cached_tokens"] == 0:
    print("prefix_cache.sh: warning: the cache-on server reported no cached tokens", file=sys.stderr)
EOF
