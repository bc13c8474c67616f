#!/usr/bin/env python3
"""Trains Tandem's default model: a small Nemotron-H on Jane Austen's novels, from scratch.

Run through tools/default_model/train.sh (which fetches the corpus package and the Python packages);
see docs/models.md. Deterministic for a given torch version and thread count: every random choice comes
from seeded generators and the run is single-process on the CPU.

Writes into OUT (normally model/default/): config.json, tokenizer.json, model.safetensors (bf16),
training.json (command, versions, hyper-parameters, final loss, held-out perplexity, sha256 of every
file) and heldout.txt (the held-out excerpt the perplexity test uses).
"""
import argparse
import hashlib
import json
import math
import platform
import random
import re
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import save_file
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers

sys.path.insert(0, str(Path(__file__).resolve().parent))
from nemotron_h import NemotronH  # noqa: E402

V2_PATTERN = (r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|"
              r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|"
              r"\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+")
SPECIALS = ["<unk>", "<s>", "</s>", "<mask>", "<pad>", "<cls>", "<sep>"]
NOVELS = ["sensesensibility", "prideprejudice", "mansfieldpark", "emma", "northangerabbey", "persuasion"]
HELDOUT_NOVEL = "persuasion"
HELDOUT_CHAPTERS = 2  # the last two chapters of Persuasion are never trained on

CONFIG = {
    "architectures": ["NemotronHForCausalLM"],
    "model_type": "nemotron_h",
    "hybrid_override_pattern": "M-M*-M*-",
    "num_hidden_layers": 8,
    "hidden_size": 128,
    "intermediate_size": 512,
    "num_attention_heads": 8,
    "num_key_value_heads": 4,
    "head_dim": 32,
    "mamba_num_heads": 8,
    "mamba_head_dim": 32,
    "n_groups": 4,
    "ssm_state_size": 32,
    "conv_kernel": 4,
    "expand": 2,
    "chunk_size": 64,
    "mamba_hidden_act": "silu",
    "mlp_hidden_act": "relu2",
    "use_bias": False,
    "mamba_proj_bias": False,
    "use_conv_bias": True,
    "mlp_bias": False,
    "attention_bias": False,
    "layer_norm_epsilon": 1e-5,
    "rms_norm_eps": 1e-5,
    "residual_in_fp32": False,
    "tie_word_embeddings": False,
    "vocab_size": 4096,
    "max_position_embeddings": 4096,
    # Init only (Tandem ignores them). time_step_min 0 keeps HF's torch path (which floors dt at it)
    # equal to the kernels'; the dt_bias initialisation below uses 0.001.
    "time_step_min": 0.0,
    "time_step_max": 0.1,
    "time_step_floor": 1e-4,
    "initializer_range": 0.02,
    "rescale_prenorm_residual": True,
    "bos_token_id": 1,
    "eos_token_id": 2,
    "pad_token_id": 0,
    "torch_dtype": "bfloat16",
    "use_cache": True,
    "num_logits_to_keep": 1,
}


def clean(text):
    """Gutenberg line wrapping undone: one paragraph per line, paragraphs separated by a blank line."""
    text = text.replace("_", "")
    paragraphs = [" ".join(p.split()) for p in re.split(r"\n\s*\n", text)]
    return "\n\n".join(p for p in paragraphs if p) + "\n"


def split_heldout(text):
    starts = [m.start() for m in re.finditer(r"^(CHAPTER [IVXLC]+|Chapter [0-9]+)", text, flags=re.M)]
    cut = starts[-HELDOUT_CHAPTERS]
    return text[:cut], text[cut:]


def train_tokenizer(texts, vocab):
    tok = Tokenizer(models.BPE(unk_token=None, byte_fallback=False))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(V2_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab, special_tokens=SPECIALS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), min_frequency=2)
    tok.train_from_iterator(texts, trainer)
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                       special_tokens=[("<s>", 1)])
    assert tok.get_vocab_size() == vocab, tok.get_vocab_size()
    assert tok.token_to_id("<s>") == 1 and tok.token_to_id("</s>") == 2
    return tok


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@torch.no_grad()
def perplexity(model, ids, window):
    """exp(mean NLL) of ids (no BOS) scored in windows of `window` tokens, each preceded by <s>."""
    model.eval()
    nll, count = 0.0, 0
    for start in range(0, len(ids), window):
        chunk = [1] + ids[start:start + window]
        x = torch.tensor([chunk])
        logits = model(x)[0, :-1].double()
        target = x[0, 1:]
        nll += torch.nn.functional.cross_entropy(logits, target, reduction="sum").item()
        count += len(chunk) - 1
    model.train()
    return math.exp(nll / count), count


@torch.no_grad()
def sample(model, tok, prompt, n, generator):
    model.eval()
    ids = tok.encode(prompt).ids
    for _ in range(n):
        logits = model(torch.tensor([ids[-256:]]))[0, -1]
        probs = torch.softmax(logits / 0.8, -1)
        ids.append(int(torch.multinomial(probs, 1, generator=generator)))
    model.train()
    return tok.decode(ids[1:])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("corpus", help="directory with <novel>.txt (extract_austen.py output)")
    ap.add_argument("out")
    ap.add_argument("--steps", type=int, default=480)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--lr", type=float, default=4e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--heldout-excerpt-chars", type=int, default=3000)
    args = ap.parse_args()

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    texts, heldout = [], ""
    for name in NOVELS:
        text = (Path(args.corpus) / f"{name}.txt").read_text(encoding="utf-8")
        if name == HELDOUT_NOVEL:
            text, heldout = split_heldout(text)
        texts.append(clean(text))
    heldout = clean(heldout)
    corpus_sha = hashlib.sha256("".join(texts).encode()).hexdigest()
    # The excerpt the C++ test scores: whole paragraphs of the held-out chapters.
    excerpt = ""
    for para in heldout.split("\n\n"):
        if len(excerpt) + len(para) > args.heldout_excerpt_chars and excerpt:
            break
        excerpt += para + "\n\n"
    (out / "heldout.txt").write_text(excerpt, encoding="utf-8")

    tok = train_tokenizer(texts, CONFIG["vocab_size"])
    tok.save(str(out / "tokenizer.json"))
    train_ids = []
    for t in texts:
        train_ids += tok.encode(t, add_special_tokens=False).ids
    train_ids = torch.tensor(train_ids)
    heldout_ids = tok.encode(heldout, add_special_tokens=False).ids
    excerpt_ids = tok.encode(excerpt, add_special_tokens=False).ids
    print(f"train tokens {len(train_ids)}, held-out tokens {len(heldout_ids)}, excerpt tokens {len(excerpt_ids)}",
          flush=True)

    model = NemotronH(CONFIG)
    init = dict(CONFIG, time_step_min=0.001)
    model.config = init
    model.init_weights(torch.Generator().manual_seed(args.seed))
    model.config = CONFIG
    n_params = sum(p.numel() for p in model.parameters())
    print(f"parameters {n_params}", flush=True)

    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and "conv1d" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.dim() >= 2 and "conv1d" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.95))
    warmup = max(1, args.steps // 20)

    def lr_at(step):
        if step < warmup:
            return args.lr * (step + 1) / warmup
        frac = (step - warmup) / max(1, args.steps - warmup)
        return args.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))

    data_gen = torch.Generator().manual_seed(args.seed + 1)
    bos = torch.ones(args.batch, 1, dtype=torch.long)
    t0 = time.time()
    losses = []
    for step in range(args.steps):
        starts = torch.randint(0, len(train_ids) - args.seq - 1, (args.batch,), generator=data_gen)
        rows = torch.stack([train_ids[s:s + args.seq] for s in starts.tolist()])
        x = torch.cat([bos, rows], dim=1)  # <s> + seq tokens; predict tokens 1..seq
        logits = model(x[:, :-1])
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1))
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
        if step % 25 == 0 or step == args.steps - 1:
            print(f"step {step} loss {loss.item():.4f} lr {lr_at(step):.2e} {time.time() - t0:.0f}s", flush=True)
        if step % 200 == 199:
            ppl, _ = perplexity(model, excerpt_ids, args.seq)
            print(f"  excerpt perplexity {ppl:.2f}", flush=True)
    train_seconds = time.time() - t0

    # Ship bf16 weights; every number below is computed from the bf16 weights (upcast to f32).
    state = {k: v.detach().to(torch.bfloat16).contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
    with torch.no_grad():
        for k, v in model.state_dict().items():
            v.copy_(state[k].float())
    (out / "config.json").write_text(json.dumps(CONFIG, indent=2) + "\n")

    final_loss = sum(losses[-50:]) / len(losses[-50:])
    ppl_heldout, n_heldout = perplexity(model, heldout_ids, args.seq)
    ppl_excerpt, n_excerpt = perplexity(model, excerpt_ids, args.seq)
    gen = torch.Generator().manual_seed(args.seed)
    samples = [sample(model, tok, "Once upon a time", 48, gen), sample(model, tok, "Elizabeth", 48, gen)]
    record = {
        "command": "python3 " + " ".join([Path(sys.argv[0]).as_posix()] + sys.argv[1:]),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "tokenizers": __import__("tokenizers").__version__,
        "corpus": {"package": "r-cran-janeaustenr (Debian 12), janeaustenr 1.0.0", "license":
                   "MIT (package); the novels are public domain (Project Gutenberg texts)",
                   "novels": NOVELS, "heldout": f"last {HELDOUT_CHAPTERS} chapters of {HELDOUT_NOVEL}",
                   "train_sha256": corpus_sha, "train_tokens": len(train_ids)},
        "args": vars(args),
        "parameters": n_params,
        "train_seconds": round(train_seconds),
        "final_train_loss_last50": round(final_loss, 4),
        "heldout_perplexity_bf16_weights": round(ppl_heldout, 4),
        "heldout_tokens": n_heldout,
        "excerpt_perplexity_bf16_weights": round(ppl_excerpt, 4),
        "excerpt_tokens": n_excerpt,
        "excerpt_window": args.seq,
        "samples_temperature_0.8": samples,
        "sha256": {f: sha256(out / f) for f in ["config.json", "tokenizer.json", "model.safetensors",
                                                "heldout.txt"]},
    }
    (out / "training.json").write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n")
    print(json.dumps(record, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
