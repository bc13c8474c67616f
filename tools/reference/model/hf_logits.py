#!/usr/bin/env python3
"""All-position logits of a prompt from Hugging Face transformers' NemotronHForCausalLM.

An independent implementation of Nemotron-H used to check Tandem's CPU forward pass. It runs the
pure-PyTorch path (no mamba_ssm / causal_conv1d kernels on CPU), which is only right for prompts
no longer than config.chunk_size and with time_step_min = 0 (its dt clamp and its inter-chunk
state pass differ from the fused kernels otherwise; see the model spec's pitfalls). Tandem's tiny
checkpoints are written with time_step_min = 0; callers keep prompts <= chunk_size.

usage: hf_logits.py MODEL_DIR IDS OUT.npy     (IDS: comma-separated token ids)
"""
import json
import sys

import numpy as np
import torch
import transformers


def main():
    model_dir, ids_text, out_path = sys.argv[1:4]
    ids = [int(x) for x in ids_text.split(",")]
    config = json.load(open(f"{model_dir}/config.json"))
    if len(ids) > config["chunk_size"]:
        sys.exit(f"prompt of {len(ids)} tokens is longer than chunk_size={config['chunk_size']}: "
                 "the HF torch path is not a valid reference there")
    if config.get("time_step_min", 0.001) != 0:
        sys.exit("time_step_min must be 0 for the HF torch path to match the kernels")
    dtype = torch.bfloat16 if config["torch_dtype"] == "bfloat16" else torch.float32
    torch.manual_seed(0)
    model = transformers.NemotronHForCausalLM.from_pretrained(model_dir, dtype=dtype)
    model.eval()
    with torch.no_grad():
        out = model(torch.tensor([ids]), use_cache=False, logits_to_keep=0)
    np.save(out_path, out.logits[0].float().numpy().astype(np.float32))


if __name__ == "__main__":
    main()
