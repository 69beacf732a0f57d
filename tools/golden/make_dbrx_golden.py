#!/usr/bin/env python3
"""Writes DBRX reference outputs for the engine's golden tests.

For each configuration below this script builds a small random DBRX checkpoint in Hugging Face
layout, runs transformers' DbrxForCausalLM on it in float32 on the CPU (eager attention), and
writes `golden.json` next to the checkpoint with the same schema as golden/dbrx/*/golden.json:

  cases[]: name, ids, logits (a row per position, full forward without cache), argmax,
           logsumexp, greedy (16 ids, greedy decoding with the KV cache), greedy_min_margin_rel,
           max_abs_ref
  kv_cache_check: ids, incremental_last_logits, full_forward_last_logits, max_abs_diff, atol
  tolerance: max |dlogit| / max |logit| <= 1e-4; greedy exact

Weights are uniform multiples of 2^-12 (exact in bf16 and fp32), scaled so that routing is
non-degenerate; a configuration is re-drawn with the next seed until every layer uses all experts,
the router's top-k / next gap is at least 3e-5 everywhere and every greedy step has a top-1/top-2
margin of at least 1e-3 of the largest logit, so that a correct engine cannot flip a choice by
rounding.

Usage:  python3 make_dbrx_golden.py --out DIR [--only NAME]
Needs:  torch, transformers (a version that ships DbrxForCausalLM), safetensors.
"""

import argparse
import json
import math
import os

import torch
from safetensors.torch import save_file
from transformers import DbrxConfig, DbrxForCausalLM

# name, d_model, heads, kv heads, layers, ffn, vocab, clip_qkv, dtype, shards
CONFIGS = [
    # head_dim 8, kv heads fewer than heads
    dict(name="c_d64_hd8_kv1", d_model=64, n_heads=8, kv_n_heads=1, n_layers=2, ffn=96,
         vocab=512, clip_qkv=8.0, dtype="float32", shards=1),
    # kv heads equal to heads (plain multi-head attention)
    dict(name="d_d96_mha", d_model=96, n_heads=4, kv_n_heads=4, n_layers=2, ffn=128,
         vocab=768, clip_qkv=None, dtype="float32", shards=1),
    # clip_qkv small enough that the clamp bites on a sizeable fraction of entries
    dict(name="e_d128_clip02", d_model=128, n_heads=8, kv_n_heads=2, n_layers=3, ffn=160,
         vocab=1024, clip_qkv=0.2, dtype="float32", shards=1),
    # a sharded checkpoint
    dict(name="f_d128_sharded", d_model=128, n_heads=8, kv_n_heads=4, n_layers=4, ffn=160,
         vocab=1024, clip_qkv=8.0, dtype="float32", shards=3),
    # a bf16 checkpoint; logits from fp32 math on the upcast weights (see README: the reference
    # in bf16 rounds intermediates, which is not what the engine computes)
    dict(name="g_d128_bf16", d_model=128, n_heads=8, kv_n_heads=2, n_layers=2, ffn=160,
         vocab=1024, clip_qkv=8.0, dtype="bfloat16", shards=1),
]

SEQ_LENGTHS = [1, 7, 33, 48]
GREEDY_TOKENS = 16
THETA = 500000.0


def make_config(c):
    return DbrxConfig(
        d_model=c["d_model"], n_heads=c["n_heads"], n_layers=c["n_layers"], max_seq_len=128,
        vocab_size=c["vocab"], tie_word_embeddings=False,
        attn_config={"clip_qkv": c["clip_qkv"], "kv_n_heads": c["kv_n_heads"],
                     "rope_theta": THETA, "attn_pdrop": 0.0},
        ffn_config={"ffn_hidden_size": c["ffn"], "moe_num_experts": 16, "moe_top_k": 4,
                    "moe_jitter_eps": 0, "moe_loss_weight": 0.05,
                    "moe_normalize_expert_weights": 1, "ffn_act_fn": {"name": "silu"}},
        attn_implementation="eager")


def fill_weights(model, seed, scale):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                steps = torch.randint(-400, 401, p.shape, generator=gen)
                p.copy_(1.0 + steps.float() / 4096.0)
                continue
            fan_in = p.shape[-1]
            if name.endswith("w2"):
                fan_in = model.config.ffn_config.ffn_hidden_size
            width = scale * (3.0 / fan_in) ** 0.5
            if "router" in name:
                width *= 2.0
            steps = torch.randint(-4096, 4097, p.shape, generator=gen).float() / 4096.0
            p.copy_(torch.round(steps * width * 4096.0) / 4096.0)


def router_stats(model, ids):
    """Experts used per layer and the smallest top-k / next gap, from the routers' inputs."""
    stats = {"min_gap": float("inf"), "used": []}
    hooks = []

    def hook(module, inputs, output):
        weights = output[0].float()
        top = torch.topk(weights, 5, dim=-1).values
        stats["min_gap"] = min(stats["min_gap"], float((top[:, 3] - top[:, 4]).min()))
        stats["used"].append(len(set(output[2].flatten().tolist())))

    for block in model.transformer.blocks:
        hooks.append(block.ffn.router.register_forward_hook(hook))
    with torch.no_grad():
        model(torch.tensor([ids]))
    for h in hooks:
        h.remove()
    return stats


def greedy(model, ids):
    out = model.generate(torch.tensor([ids]), max_new_tokens=GREEDY_TOKENS, do_sample=False,
                         output_scores=True, return_dict_in_generate=True, use_cache=True,
                         pad_token_id=0, eos_token_id=None)
    new = out.sequences[0, len(ids):].tolist()
    margin = float("inf")
    for scores in out.scores:
        top = torch.topk(scores[0], 2).values
        margin = min(margin, float((top[0] - top[1]) / scores[0].abs().max()))
    return new, margin


def write_checkpoint(model, c, out_dir):
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    if c["dtype"] == "bfloat16":
        state = {k: v.to(torch.bfloat16) for k, v in state.items()}
    config = model.config.to_dict()
    config["torch_dtype"] = c["dtype"]
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    names = sorted(state)
    if c["shards"] == 1:
        save_file(state, os.path.join(out_dir, "model.safetensors"), metadata={"format": "pt"})
        return
    per = math.ceil(len(names) / c["shards"])
    weight_map = {}
    for i in range(c["shards"]):
        shard = f"model-{i + 1:05d}-of-{c['shards']:05d}.safetensors"
        part = {n: state[n] for n in names[i * per:(i + 1) * per]}
        save_file(part, os.path.join(out_dir, shard), metadata={"format": "pt"})
        weight_map.update({n: shard for n in part})
    total = sum(t.numel() * t.element_size() for t in state.values())
    with open(os.path.join(out_dir, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)


def build(c, out_root):
    out_dir = os.path.join(out_root, c["name"])
    os.makedirs(out_dir, exist_ok=True)
    config = make_config(c)
    for seed in range(1000):
        torch.manual_seed(seed)
        model = DbrxForCausalLM(config).float().eval()
        fill_weights(model, seed, scale=1.0)
        if c["dtype"] == "bfloat16":  # the engine computes in fp32 on the upcast weights
            with torch.no_grad():
                for p in model.parameters():
                    p.copy_(p.to(torch.bfloat16).float())
        rng = torch.Generator().manual_seed(seed + 1)
        cases_ids = [torch.randint(0, c["vocab"], (n,), generator=rng).tolist()
                     for n in SEQ_LENGTHS]
        stats = router_stats(model, cases_ids[-1])
        if min(stats["used"]) < 16 or stats["min_gap"] < 3e-5:
            continue
        cases = []
        ok = True
        for name, ids in zip([f"len{n}" for n in SEQ_LENGTHS], cases_ids):
            with torch.no_grad():
                logits = model(torch.tensor([ids]), use_cache=False).logits[0].float()
            new, margin = greedy(model, ids)
            if margin < 1e-3:
                ok = False
                break
            cases.append({"name": name, "ids": ids, "logits": logits.tolist(),
                          "argmax": logits.argmax(-1).tolist(),
                          "logsumexp": torch.logsumexp(logits, -1).tolist(),
                          "greedy": new, "greedy_min_margin_rel": margin,
                          "max_abs_ref": float(logits.abs().max())})
        if not ok:
            continue
        ids = cases_ids[-1]
        with torch.no_grad():
            full = model(torch.tensor([ids]), use_cache=False).logits[0, -1]
            past = None
            for i, token in enumerate(ids):
                out = model(torch.tensor([[token]]), past_key_values=past, use_cache=True,
                            position_ids=torch.tensor([[i]]))
                past = out.past_key_values
            incremental = out.logits[0, -1]
        write_checkpoint(model, c, out_dir)
        golden = {"reference": "HF modeling_dbrx, eager attention, float32, CPU",
                  "torch": torch.__version__, "dtype": "float32", "config": c["name"],
                  "checkpoint_dtype": c["dtype"], "seed": seed,
                  "tolerance": {"logits_max_abs_diff_over_max_abs_ref": 1e-4, "greedy": "exact"},
                  "stats": {"experts_used": stats["used"], "min_router_gap": stats["min_gap"]},
                  "cases": cases,
                  "kv_cache_check": {"ids": ids,
                                     "max_abs_diff": float((full - incremental).abs().max()),
                                     "atol": 1e-4,
                                     "incremental_last_logits": incremental.tolist(),
                                     "full_forward_last_logits": full.tolist()}}
        with open(os.path.join(out_dir, "golden.json"), "w") as f:
            json.dump(golden, f)
        print(f"{c['name']}: seed {seed}, router gap {stats['min_gap']:.2e}")
        return
    raise SystemExit(f"{c['name']}: no seed met the stability conditions")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--only")
    args = parser.parse_args()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    for c in CONFIGS:
        if args.only is None or args.only == c["name"]:
            build(c, args.out)


if __name__ == "__main__":
    main()
