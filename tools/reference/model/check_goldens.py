#!/usr/bin/env python3
"""A second, independent check of tests/testdata/model: NumPy Nemotron-H from the model spec §2.

Hugging Face's pure-PyTorch Mamba path is only trusted for prompts <= chunk_size (model spec §7).
This script recomputes every golden with a plain NumPy forward that shares no code with
transformers or Tandem: the Mamba-2 scan is the sequential recurrence (no chunking at all), in
float64. So goldens longer than chunk_size are checked against a form that cannot have the
inter-chunk bug. For bf16 checkpoints it can also emulate Tandem's bf16 rounding points
(docs/numerics.md) to show that Tandem rounds exactly there.

usage (inside .venv-ref, after building build/bin/tandem):
  python tools/reference/model/check_goldens.py [--tandem]
  --tandem   also run `tandem logits` on each case and compare it with the NumPy forward
Exit status 1 when an f32 golden (or, with --tandem, Tandem's f32 logits) differs from the
float64 forward by more than 1e-4 relative max error.
"""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
from safetensors.numpy import load_file

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
DATA = os.path.join(ROOT, "tests", "testdata", "model")
TANDEM = os.path.join(ROOT, "build", "bin", "tandem")


def bf16(x):
    """Round float values to bf16 (round to nearest even), returned as float64."""
    u = np.asarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    u = (u + 0x7FFF + ((u >> 16) & 1)) & 0xFFFF0000
    return u.astype(np.uint32).view(np.float32).astype(np.float64)


def load(model_dir):
    cfg = json.load(open(os.path.join(model_dir, "config.json")))
    weights = {}
    for name in os.listdir(model_dir):
        if not name.endswith(".safetensors"):
            continue
        try:
            weights.update(load_file(os.path.join(model_dir, name)))
        except TypeError:  # bf16 is not a NumPy dtype: read the raw bits
            weights.update(load_bf16(os.path.join(model_dir, name)))
    return cfg, {k: v.astype(np.float64) for k, v in weights.items()}


def load_bf16(path):
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
        body = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        b, e = info["data_offsets"]
        assert info["dtype"] in ("BF16", "F32"), info["dtype"]
        if info["dtype"] == "F32":
            out[name] = np.frombuffer(body[b:e], dtype=np.float32).reshape(info["shape"])
        else:
            bits = np.frombuffer(body[b:e], dtype=np.uint16).astype(np.uint32) << 16
            out[name] = bits.view(np.float32).reshape(info["shape"])
    return out


def silu(x):
    return x / (1.0 + np.exp(-x))


def softplus(v):
    return np.where(v > 20.0, v, np.log1p(np.exp(np.minimum(v, 20.0))))


def forward(cfg, w, ids, round_bf16=False):
    """Logits [T, V] of one fresh sequence. round_bf16: Tandem's bf16 points (docs/numerics.md)."""
    r = bf16 if round_bf16 else (lambda x: x)

    def mm(a, b):  # bf16 emulation: f32 GEMMs like the runtime's; otherwise float64
        if not round_bf16:
            return a @ b
        return (a.astype(np.float32) @ b.astype(np.float32)).astype(np.float64)
    eps = cfg["layer_norm_epsilon"]
    T = len(ids)
    emb = w.get("backbone.embeddings.weight", w.get("backbone.embedding.weight"))
    nh, P, N, G = cfg["mamba_num_heads"], cfg["mamba_head_dim"], cfg["ssm_state_size"], cfg["n_groups"]
    di, K = nh * P, cfg["conv_kernel"]

    def rms(x, weight):
        return r(x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * weight)

    h = emb[ids]
    for i, kind in enumerate(cfg["hybrid_override_pattern"]):
        m = f"backbone.layers.{i}.mixer."
        x = rms(h, w[f"backbone.layers.{i}.norm.weight"])
        if kind == "M":
            zxbcdt = r(mm(x, w[m + "in_proj.weight"].T))
            z, xbc, dt = zxbcdt[:, :di], zxbcdt[:, di:2 * di + 2 * G * N], zxbcdt[:, 2 * di + 2 * G * N:]
            cw = w[m + "conv1d.weight"][:, 0, :]  # [conv_dim, K]; cw[:, K-1] multiplies the current token
            padded = np.concatenate([np.zeros((K - 1, xbc.shape[1])), xbc], 0)
            conv = np.stack([w[m + "conv1d.bias"] + (padded[t:t + K] * cw.T).sum(0) for t in range(T)])
            conv = r(silu(conv))
            xs = conv[:, :di].reshape(T, nh, P)
            B = conv[:, di:di + G * N].reshape(T, G, N)
            C = conv[:, di + G * N:].reshape(T, G, N)
            A = -np.exp(w[m + "A_log"])
            dtv = softplus(dt + w[m + "dt_bias"])
            S = np.zeros((nh, P, N))
            y = np.zeros((T, nh, P))
            for t in range(T):
                for j in range(nh):
                    g = j // (nh // G)
                    S[j] = S[j] * np.exp(dtv[t, j] * A[j]) + dtv[t, j] * np.outer(xs[t, j], B[t, g])
                    y[t, j] = S[j] @ C[t, g] + w[m + "D"][j] * xs[t, j]
            u = (r(y.reshape(T, di)) * silu(z)).reshape(T, G, di // G)
            u = u / np.sqrt((u * u).mean(-1, keepdims=True) + eps)
            u = r(u.reshape(T, di) * w[m + "norm.weight"])
            out = r(mm(u, w[m + "out_proj.weight"].T))
        elif kind == "*":
            Hq, Hk = cfg["num_attention_heads"], cfg["num_key_value_heads"]
            hd = cfg.get("head_dim") or cfg["attention_head_dim"]
            q = r(mm(x, w[m + "q_proj.weight"].T)).reshape(T, Hq, hd)
            k = r(mm(x, w[m + "k_proj.weight"].T)).reshape(T, Hk, hd)
            v = r(mm(x, w[m + "v_proj.weight"].T)).reshape(T, Hk, hd)
            o = np.zeros((T, Hq, hd))
            causal = np.tril(np.ones((T, T))) > 0
            for qh in range(Hq):
                kh = qh // (Hq // Hk)  # GQA: contiguous blocks of query heads share a KV head
                s = np.where(causal, q[:, qh] @ k[:, kh].T / np.sqrt(hd), -np.inf)
                p = np.exp(s - s.max(-1, keepdims=True))
                o[:, qh] = r(p / p.sum(-1, keepdims=True)) @ v[:, kh]
            out = r(mm(r(o.reshape(T, Hq * hd)), w[m + "o_proj.weight"].T))
        else:
            u = r(np.maximum(r(mm(x, w[m + "up_proj.weight"].T)), 0.0) ** 2)
            out = r(mm(u, w[m + "down_proj.weight"].T))
        h = r(h + out)
    return r(mm(rms(h, w["backbone.norm_f.weight"]), w["lm_head.weight"].T))


def rel_max_err(a, ref):
    return float(np.abs(a - ref).max() / np.abs(ref).max())


def main():
    with_tandem = "--tandem" in sys.argv[1:]
    manifest = json.load(open(os.path.join(DATA, "manifest.json")))
    failed = False
    with tempfile.TemporaryDirectory() as tmp:
        models = {}
        for case in manifest["cases"]:
            key = (case["preset"], case["seed"], case["dtype"])
            if key not in models:
                model_dir = os.path.join(tmp, "-".join(map(str, key)))
                subprocess.run([TANDEM, "make-tiny-model", model_dir, "--preset", case["preset"], "--seed",
                                str(case["seed"]), "--dtype", case["dtype"]], check=True,
                               stdout=subprocess.DEVNULL)
                models[key] = (model_dir, *load(model_dir))
            model_dir, cfg, w = models[key]
            ids = case["tokens"]
            golden = np.load(os.path.join(DATA, case["logits"])).astype(np.float64)
            exact = forward(cfg, w, ids)
            line = (f"{case['logits']}: T={len(ids)} chunk_size={cfg['chunk_size']} "
                    f"HF vs float64: {rel_max_err(golden, exact):.3g}")
            if case["dtype"] == "f32" and rel_max_err(golden, exact) > 1e-4:
                failed = True
                line += "  FAIL"
            if with_tandem:
                out = os.path.join(tmp, "tandem.npy")
                subprocess.run([TANDEM, "logits", "--model", model_dir, "--tokens", ",".join(map(str, ids)),
                                "--out", out], check=True, stdout=subprocess.DEVNULL)
                tandem = np.load(out).astype(np.float64)
                line += f"  Tandem vs float64: {rel_max_err(tandem, exact):.3g}"
                if case["dtype"] == "f32" and rel_max_err(tandem, exact) > 1e-4:
                    failed = True
                    line += "  FAIL"
                if case["dtype"] == "bf16":
                    emulated = forward(cfg, w, ids, round_bf16=True)
                    line += (f"  Tandem vs bf16-point emulation: {rel_max_err(tandem, emulated):.3g}"
                             f"  HF vs emulation: {rel_max_err(golden, emulated):.3g}")
            print(line)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
