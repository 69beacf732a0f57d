#!/usr/bin/env python3
"""Writes DBRX reference outputs for the engine's golden tests (tests/golden/dbrx/*/golden.json).

For each configuration below this script writes a small random DBRX checkpoint in Hugging Face
layout whose weights come from a seed (golden_weights.py: the C++ tests rebuild the same bytes,
so the checkpoints themselves are not kept), loads it with transformers' DbrxForCausalLM in
float32 on the CPU (eager attention), and writes `golden.json` in the schema of the shared
goldens (../shared/golden/dbrx/README.md):

  checkpoint: seed, dtype, shards, config (config.json as written), tensors (name, shape,
              range, width: the generator's inputs; sha256 of the bytes as stored)
  cases[]:    name, ids, logits (a row per position, full forward without cache), argmax,
              logsumexp, greedy (16 ids, greedy decoding with the KV cache),
              greedy_min_margin_rel, max_abs_ref
  kv_cache_check: ids, incremental_last_logits, full_forward_last_logits, max_abs_diff, atol
  tolerance:  max |dlogit| / max |logit| <= 1e-4; greedy exact

A configuration is re-drawn with the next seed until every layer uses all experts, the router's
top-k / next gap is at least 3e-5 everywhere and every greedy step has a top-1/top-2 margin of at
least 1e-3 of the largest logit, so that a correct engine cannot flip a choice by rounding.

Usage:  python3 make_dbrx_golden.py --out DIR [--only NAME]
Needs:  torch, numpy, transformers (a version that ships DbrxForCausalLM).
"""

import argparse
import json
import os
import re
import shutil
import tempfile

import torch
import transformers
from transformers import DbrxForCausalLM

import golden_weights

# head_dim >= 8; kv heads equal to and fewer than heads; a clamp that bites; a sharded and a
# bf16 checkpoint; sequences of 1, 7, 33 and 48 tokens (SEQ_LENGTHS).
CONFIGS = [
    dict(name="c_d64_hd8_kv1", d_model=64, n_heads=8, kv_n_heads=1, n_layers=2, ffn=96,
         vocab=512, clip_qkv=8.0, dtype="float32", shards=1),
    dict(name="d_d96_mha", d_model=96, n_heads=4, kv_n_heads=4, n_layers=2, ffn=128,
         vocab=768, clip_qkv=None, dtype="float32", shards=1),
    # clip_qkv small enough that the clamp bites on a sizeable fraction of entries
    dict(name="e_d128_clip02", d_model=128, n_heads=8, kv_n_heads=2, n_layers=3, ffn=160,
         vocab=1024, clip_qkv=0.2, dtype="float32", shards=1),
    dict(name="f_d128_sharded", d_model=128, n_heads=8, kv_n_heads=4, n_layers=3, ffn=160,
         vocab=1024, clip_qkv=8.0, dtype="float32", shards=3),
    # logits from fp32 math on the upcast bf16 weights (the reference in bf16 rounds its
    # intermediates, which is not what the engine computes)
    dict(name="g_d128_bf16", d_model=128, n_heads=8, kv_n_heads=2, n_layers=2, ffn=160,
         vocab=1024, clip_qkv=8.0, dtype="bfloat16", shards=1),
]

SEQ_LENGTHS = [1, 7, 33, 48]
GREEDY_TOKENS = 16
THETA = 500000.0


def hf_config(c):
    return {
        "architectures": ["DbrxForCausalLM"], "model_type": "dbrx",
        "d_model": c["d_model"], "n_heads": c["n_heads"], "n_layers": c["n_layers"],
        "max_seq_len": 128, "vocab_size": c["vocab"], "tie_word_embeddings": False,
        "attn_config": {"attn_pdrop": 0.0, "clip_qkv": c["clip_qkv"],
                        "kv_n_heads": c["kv_n_heads"], "rope_theta": THETA},
        "ffn_config": {"ffn_act_fn": {"name": "silu"}, "ffn_hidden_size": c["ffn"],
                       "moe_jitter_eps": 0.0, "moe_loss_weight": 0.05,
                       "moe_normalize_expert_weights": 1.0, "moe_num_experts": 16,
                       "moe_top_k": 4},
        "emb_pdrop": 0.0, "resid_pdrop": 0.0, "initializer_range": 0.02,
        "output_router_logits": False, "router_aux_loss_coef": 0.05, "use_cache": True,
        "torch_dtype": c["dtype"],
    }


def load_reference(folder, config):
    # transformers 5 names the load's dtype `dtype`; 4 named it `torch_dtype`.
    major = int(transformers.__version__.split(".")[0])
    dtype_arg = {"dtype" if major >= 5 else "torch_dtype": torch.float32}
    model, info = DbrxForCausalLM.from_pretrained(folder, attn_implementation="eager",
                                                  output_loading_info=True, **dtype_arg)
    for kind in ("missing_keys", "unexpected_keys", "mismatched_keys"):
        if info.get(kind):
            raise SystemExit(f"{folder}: the reference reports {kind}: {info[kind]}")
    model = model.float().eval()
    hold_to_config(model, config)
    return model


NOTES_SAID = set()


def hold_to_config(model, config):
    """Makes the reference compute what config.json says where a transformers release reads it
    otherwise, and says so. transformers 5 takes the rotary base from `rope_parameters` and
    leaves DBRX's `attn_config.rope_theta` unread (its rotary buffers come out with the default
    10,000), and clamps with `clip_qkv` unconditionally, failing on null. The rotary buffers are
    set to 1 / theta^(2i / head_dim) of the config's theta, and a null clip becomes an unbounded
    clamp, the identity: the model's arithmetic is otherwise the release's own."""
    attn = config["attn_config"]
    head_dim = config["d_model"] // config["n_heads"]
    want = 1.0 / (attn["rope_theta"] ** (
        torch.arange(0, head_dim, 2, dtype=torch.int64).float() / head_dim))
    rotary = [m for m in model.modules() if isinstance(getattr(m, "inv_freq", None), torch.Tensor)]
    if not rotary:
        raise SystemExit("the reference has no rotary embedding with an inv_freq buffer")
    for module in rotary:
        got = module.inv_freq
        if got.shape != want.shape:
            raise SystemExit(f"rotary inv_freq has shape {tuple(got.shape)}, expected "
                             f"{tuple(want.shape)} (head_dim {head_dim})")
        if not torch.allclose(got.float(), want, rtol=1e-6, atol=0):
            loaded = float(got[1].double() ** (-head_dim / 2)) if head_dim > 2 else float("nan")
            note = (f"note: the reference's rotary base was {loaded:.6g}; set to the config's "
                    f"{attn['rope_theta']:g}")
            if note not in NOTES_SAID:  # once, not for every seed drawn
                NOTES_SAID.add(note)
                print(note, flush=True)
            with torch.no_grad():
                module.inv_freq.copy_(want.to(got.dtype))
                if isinstance(getattr(module, "original_inv_freq", None), torch.Tensor):
                    module.original_inv_freq = want.to(got.dtype).clone()
        scaling = getattr(module, "attention_scaling", 1.0)
        if float(scaling) != 1.0:
            raise SystemExit(f"rotary attention_scaling is {scaling}, expected 1 (default rope)")
    if attn["clip_qkv"] is None:
        for module in model.modules():
            if hasattr(module, "clip_qkv") and module.clip_qkv is None:
                module.clip_qkv = float("inf")


def router_stats(model, checkpoint, ids):
    """Experts used per layer and the smallest top-k / next gap, computed from each ffn's input
    and the router weights of the checkpoint (independent of the reference's return types)."""
    weights = {s["name"]: s for s in checkpoint["tensors"]}
    stats = {"min_gap": float("inf"), "used": [], "distinct_topk_sets": []}
    hooks = []

    def pre_hook(layer):
        spec = weights[f"transformer.blocks.{layer}.ffn.router.layer.weight"]
        router = torch.from_numpy(golden_weights.tensor_values(checkpoint["seed"], spec))

        def hook(module, args, kwargs):
            x = args[0] if args else next(iter(kwargs.values()))
            probs = torch.softmax(x.reshape(-1, router.shape[1]).float() @ router.T, dim=-1)
            top = torch.topk(probs, 5, dim=-1)
            stats["min_gap"] = min(stats["min_gap"],
                                   float((top.values[:, 3] - top.values[:, 4]).min()))
            chosen = top.indices[:, :4]
            stats["used"].append(len(set(chosen.flatten().tolist())))
            stats["distinct_topk_sets"].append(
                len({tuple(sorted(row)) for row in chosen.tolist()}))
        return hook

    clip = checkpoint["config"]["attn_config"]["clip_qkv"]
    stats["qkv_clamped_fraction"] = [] if clip is not None else None

    def qkv_hook(module, args, output):
        stats["qkv_clamped_fraction"].append(float((output.abs() > clip).float().mean()))

    # Found by module name (blocks.<i>.ffn, ...Wqkv), not by attribute paths that releases move.
    ffn_layers = 0
    for name, module in model.named_modules():
        ffn = re.fullmatch(r"(?:.*\.)?blocks\.(\d+)\.ffn", name)
        if ffn:
            ffn_layers += 1
            hooks.append(module.register_forward_pre_hook(pre_hook(int(ffn.group(1))),
                                                          with_kwargs=True))
        elif clip is not None and name.endswith("Wqkv"):
            hooks.append(module.register_forward_hook(qkv_hook))
    if ffn_layers != checkpoint["config"]["n_layers"]:
        raise SystemExit("the reference's modules are not named as expected (blocks.<i>.ffn)")
    with torch.no_grad():
        model(input_ids=torch.tensor([ids]), use_cache=False)
    for h in hooks:
        h.remove()
    return stats


@torch.no_grad()
def greedy(model, ids):
    """Greedy continuation through the KV cache, and the smallest relative top-1/top-2 margin."""
    out = model(input_ids=torch.tensor([ids]), use_cache=True)
    new, margin = [], float("inf")
    for _ in range(GREEDY_TOKENS):
        scores = out.logits[0, -1].float()
        top = torch.topk(scores, 2).values
        margin = min(margin, float((top[0] - top[1]) / scores.abs().max()))
        token = int(scores.argmax())
        new.append(token)
        out = model(input_ids=torch.tensor([[token]]), past_key_values=out.past_key_values,
                    use_cache=True)
    return new, margin


@torch.no_grad()
def incremental_last_logits(model, ids):
    out = model(input_ids=torch.tensor([ids[:1]]), use_cache=True)
    for token in ids[1:]:
        out = model(input_ids=torch.tensor([[token]]), past_key_values=out.past_key_values,
                    use_cache=True)
    return out.logits[0, -1].float()


def try_seed(c, seed, scratch):
    """The golden of configuration `c` drawn with `seed`, or why the draw is rejected (a str)."""
    checkpoint = {"seed": seed, "dtype": c["dtype"], "shards": c["shards"],
                  "config": hf_config(c), "tensors": golden_weights.tensor_specs(c)}
    golden_weights.add_checksums(checkpoint)
    shutil.rmtree(scratch, ignore_errors=True)
    golden_weights.write_checkpoint(checkpoint, scratch)
    model = load_reference(scratch, checkpoint["config"])
    cases_ids = {f"len{n}": golden_weights.token_ids(seed, f"len{n}", n, c["vocab"])
                 for n in SEQ_LENGTHS}
    stats = router_stats(model, checkpoint, cases_ids[f"len{SEQ_LENGTHS[-1]}"])
    if min(stats["used"]) < 16:
        return "an expert unused"
    if stats["min_gap"] < 3e-5:
        return "router top-k gap under 3e-5"
    cases, min_margin = [], float("inf")
    for name, ids in cases_ids.items():
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([ids]), use_cache=False).logits[0].float()
        new, margin = greedy(model, ids)
        if margin < 1e-3:
            return "greedy margin under 1e-3"
        min_margin = min(min_margin, margin)
        cases.append({"name": name, "ids": ids, "logits": logits.tolist(),
                      "argmax": logits.argmax(-1).tolist(),
                      "logsumexp": torch.logsumexp(logits, -1).tolist(),
                      "greedy": new, "greedy_min_margin_rel": margin,
                      "max_abs_ref": float(logits.abs().max())})
    ids = cases_ids[f"len{SEQ_LENGTHS[-1]}"]
    with torch.no_grad():
        full = model(input_ids=torch.tensor([ids]), use_cache=False).logits[0, -1].float()
    incremental = incremental_last_logits(model, ids)
    stats["min_greedy_margin_rel"] = min_margin
    return {"reference": "Hugging Face DbrxForCausalLM, eager attention, float32, CPU",
            "torch": torch.__version__, "transformers": transformers.__version__,
            "dtype": "float32", "config": c["name"], "checkpoint_dtype": c["dtype"],
            "tolerance": {"logits_max_abs_diff_over_max_abs_ref": 1e-4, "greedy": "exact"},
            "stats": stats, "checkpoint": checkpoint, "cases": cases,
            "kv_cache_check": {"ids": ids,
                               "max_abs_diff": float((full - incremental).abs().max()),
                               "atol": 1e-4,
                               "incremental_last_logits": incremental.tolist(),
                               "full_forward_last_logits": full.tolist()}}


def build(c, out_root, max_seeds):
    with tempfile.TemporaryDirectory() as scratch_root:
        scratch = os.path.join(scratch_root, c["name"])
        rejected = {}
        for seed in range(max_seeds):
            golden = try_seed(c, seed, scratch)
            if isinstance(golden, str):
                rejected[golden] = rejected.get(golden, 0) + 1
                continue
            out_dir = os.path.join(out_root, c["name"])
            os.makedirs(out_dir, exist_ok=True)
            with open(os.path.join(out_dir, "golden.json"), "w") as f:
                json.dump(golden, f)
            print(f"{c['name']}: seed {seed}, router gap {golden['stats']['min_gap']:.2e}, "
                  f"greedy margin {golden['stats']['min_greedy_margin_rel']:.2e}", flush=True)
            return
    raise SystemExit(f"{c['name']}: no seed below {max_seeds} met the stability conditions "
                     f"(seeds rejected for: {rejected})")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--only")
    parser.add_argument("--max-seeds", type=int, default=200)
    args = parser.parse_args()
    torch.set_num_threads(max(1, min(8, os.cpu_count() or 1)))
    failed = []
    for c in CONFIGS:
        if args.only is None or args.only == c["name"]:
            # One configuration the reference cannot run leaves the others to be made.
            try:
                build(c, args.out, args.max_seeds)
            except (Exception, SystemExit) as error:  # noqa: BLE001 - reported, then exit 1
                print(f"{c['name']}: FAILED: {type(error).__name__}: {error}", flush=True)
                failed.append(c["name"])
    if failed:
        raise SystemExit(f"not made: {', '.join(failed)}")


if __name__ == "__main__":
    main()
