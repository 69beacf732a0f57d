#!/usr/bin/env python3
"""Decode speed of Hugging Face transformers' eager DbrxForCausalLM on one GPU: the anchor that
`sluice bench decode --backend cuda` compares itself with (docs/benchmarks.md).

A model of DBRX's exact layer dimensions (d_model 6144, 48 heads, 8 KV heads, 16 experts of
10,752, top-4, vocabulary 100,352) with --layers layers and random bf16 weights made on the GPU.
For each batch size: a random prompt of --prompt tokens per sequence, then --steps greedy decode
steps through the KV cache, timed after --warmup steps with the device synchronised around the
timed loop. Prints one line per batch and, last, one JSON object of the figures.

Needs: torch with CUDA, transformers (a version that ships DbrxForCausalLM).
"""
import argparse
import json
import time

import torch
from transformers import DbrxConfig, DbrxForCausalLM


def make_model(layers):
    config = DbrxConfig(
        d_model=6144, n_heads=48, n_layers=layers, max_seq_len=32768, vocab_size=100352,
        attn_config={"kv_n_heads": 8, "rope_theta": 500000.0, "clip_qkv": 8.0},
        ffn_config={"ffn_hidden_size": 10752, "moe_num_experts": 16, "moe_top_k": 4,
                    "ffn_act_fn": {"name": "silu"}},
        tie_word_embeddings=False)
    config._attn_implementation = "eager"
    torch.set_default_dtype(torch.bfloat16)
    with torch.device("cuda"):
        model = DbrxForCausalLM(config)
    torch.set_default_dtype(torch.float32)
    generator = torch.Generator(device="cuda").manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() >= 2:
                p.normal_(0.0, 0.02, generator=generator)
            else:
                p.fill_(1.0)
    return model.eval()


def copy_bandwidth():
    """Device-to-device copy of 4 GiB, bytes read plus written over the median time."""
    src = torch.empty(1 << 31, dtype=torch.bfloat16, device="cuda").normal_()
    dst = torch.empty_like(src)
    times = []
    for _ in range(8):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        dst.copy_(src)
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    times.sort()
    return 2 * src.numel() * src.element_size() / times[len(times) // 2] / 1e9


@torch.no_grad()
def decode_speed(model, batch, prompt, steps, warmup):
    ids = torch.randint(0, model.config.vocab_size, (batch, prompt), device="cuda")
    out = model(input_ids=ids, use_cache=True)
    cache = out.past_key_values
    token = out.logits[:, -1].argmax(-1, keepdim=True)
    for _ in range(warmup):
        out = model(input_ids=token, past_key_values=cache, use_cache=True)
        token = out.logits[:, -1].argmax(-1, keepdim=True)
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        out = model(input_ids=token, past_key_values=cache, use_cache=True)
        token = out.logits[:, -1].argmax(-1, keepdim=True)
    torch.cuda.synchronize()
    step_s = (time.perf_counter() - start) / steps
    return step_s


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--batches", default="1,8,32,128")
    parser.add_argument("--prompt", type=int, default=32)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()

    figures = {"gpu": torch.cuda.get_device_name(), "layers": args.layers,
               "prompt_tokens": args.prompt, "steps": args.steps,
               "transformers_attention": "eager"}
    figures["copy_gb_s"] = copy_bandwidth()
    torch.cuda.empty_cache()
    model = make_model(args.layers)
    for batch in (int(b) for b in args.batches.split(",")):
        step_s = decode_speed(model, batch, args.prompt, args.steps, args.warmup)
        figures[f"batch{batch}.step_ms"] = step_s * 1e3
        figures[f"batch{batch}.tok_s"] = batch / step_s
        figures[f"batch{batch}.layer_ms"] = step_s * 1e3 / args.layers
        print(f"hf eager batch {batch:4d}: {step_s * 1e3:9.2f} ms/step  "
              f"{batch / step_s:9.1f} tok/s  {step_s * 1e3 / args.layers:8.2f} ms/layer",
              flush=True)
    print(json.dumps(figures), flush=True)


if __name__ == "__main__":
    main()
