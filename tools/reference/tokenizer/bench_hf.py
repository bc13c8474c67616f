#!/usr/bin/env python3
"""Encode throughput of HF `tokenizers` (single thread) on the tokenizer test corpus, merged with
Tandem's tokenizer_bench JSON into bench/results/tokenizer_encode.json.

Usage: bench_hf.py DATA_DIR TANDEM_BENCH_JSON OUT_JSON  (run by bench_tokenizer.sh)
"""
import glob
import json
import os
import platform
import subprocess
import sys
import time

os.environ["TOKENIZERS_PARALLELISM"] = "false"
os.environ["RAYON_NUM_THREADS"] = "1"
import tokenizers  # noqa: E402  (after the thread settings)
from tokenizers import Tokenizer  # noqa: E402


def hf_mb_per_s(path, texts, fresh, seconds=3.0):
    nbytes = sum(len(x.encode("utf-8")) for x in texts)
    best = 0.0
    for _ in range(3):
        tok = Tokenizer.from_file(path)
        elapsed, rounds = 0.0, 0
        while elapsed < seconds:
            if fresh:
                tok = Tokenizer.from_file(path)
            t0 = time.process_time()
            for x in texts:
                tok.encode(x, add_special_tokens=False)
            elapsed += time.process_time() - t0
            rounds += 1
        best = max(best, nbytes * rounds / elapsed / 1e6)
    return best


def cpu_model():
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main():
    data_dir, tandem_json, out_path = sys.argv[1:4]
    texts = [open(f, "rb").read().decode("utf-8") for f in sorted(glob.glob(f"{data_dir}/corpus/*.txt"))]
    tandem = json.load(open(tandem_json))
    tandem_rates = {b["name"].split("/")[0]: b["bytes_per_second"] / 1e6 for b in tandem["benchmarks"]}
    rows = []
    for name, config, fresh in [("nemotron_warm_cache", "tokenizer.json", False),
                                ("nemotron_cold_cache", "tokenizer.json", True),
                                ("gpt2_warm_cache", "gpt2.json", False)]:
        hf = hf_mb_per_s(f"{data_dir}/{config}", texts, fresh)
        key = {"nemotron_warm_cache": "BM_EncodeNemotronWarmCache",
               "nemotron_cold_cache": "BM_EncodeNemotronColdCache",
               "gpt2_warm_cache": "BM_EncodeGpt2WarmCache"}[name]
        t = tandem_rates[key]
        rows.append({"case": name, "tokenizer": config, "tandem_mb_per_s": round(t, 2),
                     "hf_tokenizers_mb_per_s": round(hf, 2), "ratio_tandem_over_hf": round(t / hf, 2)})
    result = {
        "benchmark": "tokenizer encode throughput, single thread, add_special_tokens=false",
        "input": f"tests/testdata/tokenizer/corpus/*.txt ({sum(len(x.encode()) for x in texts)} bytes, "
                 "each file encoded whole; MB = 1e6 bytes)",
        "machine": {"cpu_model": cpu_model(), "nproc": os.cpu_count(),
                    "note": "shared 2-core VM; other builds may have been running"},
        "hf_tokenizers_version": tokenizers.__version__,
        "hf_settings": "Python Tokenizer.encode, TOKENIZERS_PARALLELISM=false, RAYON_NUM_THREADS=1, process CPU time, best of 3",
        "timing": "CPU time on both sides (Google Benchmark default; Python time.process_time), the machine being shared",
        "tandem": "bench/tokenizer_bench (Google Benchmark), tandem::tokenizer::Tokenizer::Encode",
        "date": tandem["context"].get("date"),
        "results": rows,
    }
    with open(out_path, "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
