"""A small Nemotron-H in PyTorch, written from the model spec (shared/reference/nemotron-h-model-spec.md).

Same parameter names and shapes as the Hugging Face checkpoints (`backbone.*`, `lm_head.weight`), same math
as the fused-kernel reference (spec §2): pre-norm blocks of Mamba-2 (`M`), attention (`*`, GQA, no positional
encoding) and relu^2 MLP (`-`) layers, RMSNorm with eps `layer_norm_epsilon`, grouped gated RMSNorm in Mamba-2,
softplus(dt + dt_bias) without clamping, untied lm_head.

The Mamba-2 scan is computed in its quadratic (single-chunk SSD) form over the whole sequence, which is
the same function as the recurrence `S <- S*exp(dt*A) + dt*B*x, y = C.S + D*x` started from zero state
(spec §2.4 step 3). Everything runs in the parameters' dtype (f32 for training, f64 for checking).
"""
import math

import torch
import torch.nn.functional as F
from torch import nn


def rms_norm(x, weight, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight


class RMSNorm(nn.Module):
    def __init__(self, n, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n))
        self.eps = eps

    def forward(self, x):
        return rms_norm(x, self.weight, self.eps)


def segsum(x):
    """x [..., T] -> [..., T, T] with out[..., t, s] = sum(x[s+1..t]) for s <= t, -inf above."""
    t = x.shape[-1]
    cs = torch.cumsum(x, dim=-1)
    out = cs[..., :, None] - cs[..., None, :]
    mask = torch.ones(t, t, dtype=torch.bool, device=x.device).tril()
    return out.masked_fill(~mask, float("-inf"))


def ssd_scan(xdt, da, bm, cm, chunk):
    """The Mamba-2 scan from zero state, in chunked (SSD) form.

    xdt [b, l, h, p] = dt * x;  da [b, l, h] = dt * A;  bm, cm [b, l, g, n]; head j uses group j // (h/g).
    Returns y [b, l, h, p] with y_t = C_t . S_t, S_t = exp(da_t) S_{t-1} + B_t xdt_t (no D term).
    """
    b, l, h, p = xdt.shape
    g, n = bm.shape[2], bm.shape[3]
    r = h // g
    pad = (-l) % chunk
    if pad:
        xdt = F.pad(xdt, (0, 0, 0, 0, 0, pad))
        da = F.pad(da, (0, 0, 0, pad))
        bm = F.pad(bm, (0, 0, 0, 0, 0, pad))
        cm = F.pad(cm, (0, 0, 0, 0, 0, pad))
    c = (l + pad) // chunk
    x = xdt.reshape(b, c, chunk, g, r, p)
    bm = bm.reshape(b, c, chunk, g, n)
    cm = cm.reshape(b, c, chunk, g, n)
    a = da.reshape(b, c, chunk, g, r).permute(0, 3, 4, 1, 2)  # [b, g, r, c, L]
    a_cum = torch.cumsum(a, dim=-1)
    # Within each chunk: y_t += sum_{s<=t} (C_t.B_s) exp(a_cum_t - a_cum_s) xdt_s.
    decay = torch.exp(segsum(a))  # [b, g, r, c, L, L]
    cb = torch.einsum("bclgn,bcsgn->bgcls", cm, bm)  # [b, g, c, L, L]
    y = torch.einsum("bgcls,bgrcls,bcsgrp->bclgrp", cb, decay, x)
    # State at the end of each chunk (from that chunk's inputs only).
    to_end = torch.exp(a_cum[..., -1:] - a_cum)  # [b, g, r, c, L]
    states = torch.einsum("bclgn,bgrcl,bclgrp->bcgrpn", bm, to_end, x)
    # Pass states across chunks: state entering chunk k = sum_{j<k} exp(sum a over chunks j+1..k-1) ...
    chunk_a = F.pad(a_cum[..., -1], (1, 0))  # [b, g, r, c+1]
    across = torch.exp(segsum(chunk_a))  # [b, g, r, c+1, c+1]
    states = torch.cat([torch.zeros_like(states[:, :1]), states], dim=1)  # [b, c+1, g, r, p, n]
    entering = torch.einsum("bgrzc,bcgrpn->bzgrpn", across, states)[:, :-1]  # [b, c, g, r, p, n]
    y = y + torch.einsum("bclgn,bcgrpn,bgrcl->bclgrp", cm, entering, torch.exp(a_cum))
    return y.reshape(b, c * chunk, h, p)[:, :l]


class Mamba2(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.h, self.p = c["mamba_num_heads"], c["mamba_head_dim"]
        self.g, self.n = c["n_groups"], c["ssm_state_size"]
        self.d_inner = self.h * self.p
        self.conv_dim = self.d_inner + 2 * self.g * self.n
        self.eps = c["layer_norm_epsilon"]
        self.chunk = c["chunk_size"]
        k = c["conv_kernel"]
        self.in_proj = nn.Linear(c["hidden_size"], self.d_inner + self.conv_dim + self.h, bias=False)
        self.conv1d = nn.Conv1d(self.conv_dim, self.conv_dim, k, groups=self.conv_dim, padding=k - 1, bias=True)
        self.A_log = nn.Parameter(torch.zeros(self.h))
        self.D = nn.Parameter(torch.ones(self.h))
        self.dt_bias = nn.Parameter(torch.zeros(self.h))
        self.norm = RMSNorm(self.d_inner, self.eps)
        self.out_proj = nn.Linear(self.d_inner, c["hidden_size"], bias=False)

    def forward(self, u):  # u: [b, l, hidden]
        b, l, _ = u.shape
        zxbcdt = self.in_proj(u)
        z, xbc, dt = torch.split(zxbcdt, [self.d_inner, self.conv_dim, self.h], dim=-1)
        xbc = F.silu(self.conv1d(xbc.transpose(1, 2))[..., :l].transpose(1, 2))
        x, bm, cm = torch.split(xbc, [self.d_inner, self.g * self.n, self.g * self.n], dim=-1)
        x = x.reshape(b, l, self.h, self.p)
        dt = F.softplus(dt + self.dt_bias, threshold=20.0)  # [b, l, h]
        a = -torch.exp(self.A_log)
        y = ssd_scan(x * dt[..., None], dt * a, bm.reshape(b, l, self.g, self.n),
                     cm.reshape(b, l, self.g, self.n), self.chunk)
        y = y + self.D[:, None] * x
        y = y.reshape(b, l, self.d_inner) * F.silu(z)
        y = y.reshape(b, l, self.g, self.d_inner // self.g)
        w = self.norm.weight.reshape(self.g, -1)
        y = rms_norm(y, w, self.eps).reshape(b, l, self.d_inner)
        return self.out_proj(y)


class Attention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.hq, self.hkv = c["num_attention_heads"], c["num_key_value_heads"]
        self.d = c["head_dim"]
        hid = c["hidden_size"]
        self.q_proj = nn.Linear(hid, self.hq * self.d, bias=False)
        self.k_proj = nn.Linear(hid, self.hkv * self.d, bias=False)
        self.v_proj = nn.Linear(hid, self.hkv * self.d, bias=False)
        self.o_proj = nn.Linear(self.hq * self.d, hid, bias=False)

    def forward(self, x):
        b, l, _ = x.shape
        q = self.q_proj(x).view(b, l, self.hq, self.d).transpose(1, 2)
        k = self.k_proj(x).view(b, l, self.hkv, self.d).transpose(1, 2)
        v = self.v_proj(x).view(b, l, self.hkv, self.d).transpose(1, 2)
        rep = self.hq // self.hkv  # q head i uses kv head i // rep
        k = k.repeat_interleave(rep, dim=1)
        v = v.repeat_interleave(rep, dim=1)
        # softmax(q k^T / sqrt(d), causal) v
        o = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=1.0 / math.sqrt(self.d))
        o = o.transpose(1, 2).reshape(b, l, self.hq * self.d)
        return self.o_proj(o)


class MLP(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.up_proj = nn.Linear(c["hidden_size"], c["intermediate_size"], bias=False)
        self.down_proj = nn.Linear(c["intermediate_size"], c["hidden_size"], bias=False)

    def forward(self, x):
        return self.down_proj(torch.relu(self.up_proj(x)).square())


class Block(nn.Module):
    def __init__(self, c, kind):
        super().__init__()
        self.norm = RMSNorm(c["hidden_size"], c["layer_norm_epsilon"])
        self.mixer = {"M": Mamba2, "*": Attention, "-": MLP}[kind](c)

    def forward(self, h):
        return h + self.mixer(self.norm(h))


class Backbone(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.embeddings = nn.Embedding(c["vocab_size"], c["hidden_size"])
        self.layers = nn.ModuleList(Block(c, k) for k in c["hybrid_override_pattern"])
        self.norm_f = RMSNorm(c["hidden_size"], c["layer_norm_epsilon"])


class NemotronH(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.config = c
        self.backbone = Backbone(c)
        self.lm_head = nn.Linear(c["hidden_size"], c["vocab_size"], bias=False)

    def forward(self, ids):  # ids: [b, l] -> logits [b, l, vocab]
        h = self.backbone.embeddings(ids)
        for layer in self.backbone.layers:
            h = layer(h)
        return self.lm_head(self.backbone.norm_f(h))

    def init_weights(self, generator):
        """Mamba-2 / Megatron-style initialisation (init only; not part of the model's function)."""
        c = self.config
        std = c["initializer_range"]
        n_layers = len(c["hybrid_override_pattern"])
        for name, p in self.named_parameters():
            with torch.no_grad():
                if name.endswith("A_log"):
                    p.copy_(torch.log(torch.empty_like(p).uniform_(1, 16, generator=generator)))
                elif name.endswith("dt_bias"):
                    lo, hi = math.log(c["time_step_min"]), math.log(c["time_step_max"])
                    dt = torch.exp(torch.empty_like(p).uniform_(lo, hi, generator=generator))
                    dt = dt.clamp(min=c["time_step_floor"])
                    p.copy_(dt + torch.log(-torch.expm1(-dt)))  # softplus^-1
                elif name.endswith(".D") or "norm" in name:
                    p.fill_(1.0)
                elif name.endswith("conv1d.weight"):
                    bound = 1 / math.sqrt(p.shape[-1])
                    p.uniform_(-bound, bound, generator=generator)
                elif name.endswith("conv1d.bias"):
                    p.zero_()
                elif name.endswith(("out_proj.weight", "o_proj.weight", "down_proj.weight")):
                    p.normal_(0, std / math.sqrt(2 * n_layers), generator=generator)
                else:
                    p.normal_(0, std, generator=generator)
