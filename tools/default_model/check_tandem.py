#!/usr/bin/env python3
"""Checks Tandem against the PyTorch model (nemotron_h.py) on the default model's held-out excerpt.

usage: check_tandem.py [--tandem build/bin/tandem] [--model models/default]

1. Perplexity of heldout.txt (windows of 256 tokens, each after <s>), three ways: PyTorch in float64,
   PyTorch in float32 (both on the shipped bf16 weights, upcast), and `tandem perplexity --dtype f32`
   on every tp x pp layout of the CTest. Prints them and the relative differences.
2. All-position logits of the first window: `tandem logits` on an f32 copy of the checkpoint against
   PyTorch float64; prints the max relative error (max |diff| / max |logit|).
Fails (exit 1) when a relative difference exceeds 1e-3. Needs torch, tokenizers, safetensors, numpy
(tools/default_model/train.sh installs them into build/venv-train).
"""
import argparse
import json
import math
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from tokenizers import Tokenizer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from nemotron_h import NemotronH  # noqa: E402

LAYOUTS = ["", "--tp 2", "--tp 4", "--pp 2", "--pp 3", "--tp 2 --pp 2"]


def torch_ppl(model, ids, window, bos):
    nll, n = 0.0, 0
    with torch.no_grad():
        for s in range(0, len(ids), window):
            x = torch.tensor([[bos] + ids[s:s + window]])
            logits = model(x)[0, :-1].double()
            nll += torch.nn.functional.cross_entropy(logits, x[0, 1:], reduction="sum").item()
            n += x.shape[1] - 1
    return math.exp(nll / n)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tandem", default="build/bin/tandem")
    ap.add_argument("--model", default="models/default")
    ap.add_argument("--window", type=int, default=256)
    args = ap.parse_args()
    torch.set_num_threads(2)
    model_dir = Path(args.model)
    config = json.loads((model_dir / "config.json").read_text())
    weights = load_file(str(model_dir / "model.safetensors"))
    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    text = (model_dir / "heldout.txt").read_text(encoding="utf-8")
    ids = tok.encode(text, add_special_tokens=False).ids
    bos = config["bos_token_id"]

    results = {}
    models = {}
    for name, dtype in (("torch_f64", torch.float64), ("torch_f32", torch.float32)):
        m = NemotronH(config).to(dtype)
        m.load_state_dict({k: v.to(dtype) for k, v in weights.items()})
        m.eval()
        models[name] = m
        results[name] = torch_ppl(m, ids, args.window, bos)
    ok = True
    ref = results["torch_f64"]
    print(f"tokens {len(ids)}; perplexity torch f64 {ref:.6f}, torch f32 {results['torch_f32']:.6f}")
    for layout in LAYOUTS:
        cmd = [args.tandem, "perplexity", "--json", "--model", str(model_dir), "--text-file",
               str(model_dir / "heldout.txt"), "--dtype", "f32", "--window", str(args.window)] + layout.split()
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        ppl = json.loads(out.strip().splitlines()[-1])["perplexity"]
        rel = abs(ppl - ref) / ref
        ok &= rel <= 1e-3
        print(f"tandem f32 {layout or 'tp=1 pp=1':14s} {ppl:.6f}  rel. diff vs torch f64 {rel:.2e}")

    with tempfile.TemporaryDirectory() as tmp:
        save_file({k: v.float().contiguous() for k, v in weights.items()}, f"{tmp}/model.safetensors",
                  metadata={"format": "pt"})
        for f in ("config.json", "tokenizer.json"):
            Path(tmp, f).write_bytes((model_dir / f).read_bytes())
        window = [bos] + ids[:args.window]
        subprocess.run([args.tandem, "logits", "--model", tmp, "--tokens", ",".join(map(str, window)),
                        "--out", f"{tmp}/logits.npy"], check=True, capture_output=True)
        tandem_logits = np.load(f"{tmp}/logits.npy").astype(np.float64)
    with torch.no_grad():
        want = models["torch_f64"](torch.tensor([window]))[0].numpy()
    rel = np.abs(tandem_logits - want).max() / np.abs(want).max()
    ok &= rel <= 1e-3
    print(f"logits of window 1 ({len(window)} positions): tandem f32 vs torch f64 max rel. error {rel:.2e}")
    print("OK" if ok else "FAILED: a difference exceeds 1e-3")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
