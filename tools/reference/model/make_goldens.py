#!/usr/bin/env python3
"""Writes tests/testdata/model/{manifest.json, *.npy}: HF logits for Tandem's tiny checkpoints.

Run through make_goldens.sh (it sets up the virtual environment)."""
import json
import os
import random
import subprocess
import sys
import tempfile

import numpy as np
import torch
import transformers

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
OUT = os.path.join(ROOT, "tests", "testdata", "model")
TANDEM = os.path.join(ROOT, "build", "bin", "tandem")

# (preset, seed, dtype, prompt lengths). tiny has chunk_size 16: 40 crosses two chunk borders.
CASES = [
    ("tiny", 7, "f32", [1, 7, 16, 40]),
    ("tiny-7", 11, "f32", [3, 16, 33]),
    ("tiny", 7, "bf16", [9, 16]),
    ("tiny-7", 11, "bf16", [12]),
]


def fnv1a64(path):
    h = 0xCBF29CE484222325
    with open(path, "rb") as f:
        for byte in f.read():
            h ^= byte
            h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def main():
    os.makedirs(OUT, exist_ok=True)
    for name in os.listdir(OUT):
        if name.endswith(".npy"):
            os.remove(os.path.join(OUT, name))
    manifest = {
        "generator": "tools/reference/model/make_goldens.sh",
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "cases": [],
    }
    rng = random.Random(2026)
    with tempfile.TemporaryDirectory() as tmp:
        for preset, seed, dtype, lengths in CASES:
            model_dir = os.path.join(tmp, f"{preset}-{dtype}-{seed}")
            subprocess.run([TANDEM, "make-tiny-model", model_dir, "--preset", preset, "--seed",
                            str(seed), "--dtype", dtype], check=True, stdout=subprocess.DEVNULL)
            config = json.load(open(os.path.join(model_dir, "config.json")))
            torch_dtype = torch.bfloat16 if dtype == "bf16" else torch.float32
            model = transformers.NemotronHForCausalLM.from_pretrained(model_dir, dtype=torch_dtype)
            model.eval()
            for length in lengths:
                ids = [rng.randrange(config["vocab_size"]) for _ in range(length)]
                with torch.no_grad():
                    out = model(torch.tensor([ids]), use_cache=False, logits_to_keep=0)
                logits = out.logits[0].float().numpy().astype(np.float32)
                file = f"{preset}-{dtype}-seed{seed}-len{length}.npy"
                np.save(os.path.join(OUT, file), logits)
                manifest["cases"].append({
                    "preset": preset, "seed": seed, "dtype": dtype, "tokens": ids,
                    "logits": file,
                    "weights_fnv1a64": fnv1a64(os.path.join(model_dir, "model.safetensors")),
                })
                print(f"{file}: {logits.shape}", file=sys.stderr)
    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
