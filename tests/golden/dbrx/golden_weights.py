#!/usr/bin/env python3
"""The weights of the golden DBRX checkpoints, from a seed, portably.

The repository keeps the reference's outputs (golden.json) but not the checkpoints: every weight
is a function of (seed, tensor name, element index) that the C++ tests compute the same way
(tests/support/golden_checkpoint.h), so both sides rebuild the same checkpoint bit for bit.

For element i of the tensor `name` (row-major), with all arithmetic modulo 2^64:
  key   = FNV-1a 64 of the UTF-8 name
  x     = mix(seed * 0x9E3779B97F4A7C15 + key + i), mix = SplitMix64's output function
          (z += 0x9E3779B97F4A7C15; z = (z ^ z>>30) * 0xBF58476D1CE4E5B9;
           z = (z ^ z>>27) * 0x94D049BB133111EB; z ^ z>>31)
  step  = (x >> 11) % (2 * range + 1) - range
  value = 1 + step / 4096                        for norm weights (range 400)
        = rint(step * width) / 4096              otherwise (range 4096; rint rounds half to
                                                 even; width = sqrt(3 / fan_in) in double)
Every value is a multiple of 2^-12 and exact in float32; a bf16 checkpoint rounds the float32
values to bf16 (nearest, ties to even). Token ids of a case come from the same stream under the
name "ids/<case>": x % vocab.

Needs numpy only (no torch): `python3 golden_weights.py SPEC.json OUT_DIR` writes the checkpoint
that a golden.json's "checkpoint" section describes.
"""

import hashlib
import json
import math
import os
import struct
import sys

import numpy as np

GAMMA = np.uint64(0x9E3779B97F4A7C15)
M1 = np.uint64(0xBF58476D1CE4E5B9)
M2 = np.uint64(0x94D049BB133111EB)
NORM_RANGE = 400
WEIGHT_RANGE = 4096


def fnv1a64(name):
    h = 0xCBF29CE484222325
    for byte in name.encode("utf-8"):
        h = ((h ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def stream(seed, name, count):
    """The generator's raw 64-bit words for elements 0..count-1 of `name`."""
    base = (seed * 0x9E3779B97F4A7C15 + fnv1a64(name)) & 0xFFFFFFFFFFFFFFFF
    with np.errstate(over="ignore"):
        z = np.arange(count, dtype=np.uint64) + np.uint64(base) + GAMMA
        z = (z ^ (z >> np.uint64(30))) * M1
        z = (z ^ (z >> np.uint64(27))) * M2
        return z ^ (z >> np.uint64(31))


def steps(seed, name, count, value_range):
    x = stream(seed, name, count) >> np.uint64(11)
    return (x % np.uint64(2 * value_range + 1)).astype(np.int64) - value_range


def token_ids(seed, case, count, vocab):
    return (stream(seed, "ids/" + case, count) % np.uint64(vocab)).astype(np.int64).tolist()


def tensor_specs(c):
    """Name, shape, range and width of every tensor of the Hugging Face DBRX layout."""
    d, heads, kv, ffn, experts = c["d_model"], c["n_heads"], c["kv_n_heads"], c["ffn"], 16
    head_dim = d // heads

    def scaled(name, shape, fan_in, factor=1.0):
        return {"name": name, "shape": shape, "range": WEIGHT_RANGE,
                "width": factor * math.sqrt(3.0 / fan_in)}

    def norm(name):
        return {"name": name, "shape": [d], "range": NORM_RANGE, "width": None}

    specs = [scaled("transformer.wte.weight", [c["vocab"], d], d),
             norm("transformer.norm_f.weight"),
             scaled("lm_head.weight", [c["vocab"], d], d)]
    for i in range(c["n_layers"]):
        block = f"transformer.blocks.{i}."
        specs += [
            norm(block + "norm_attn_norm.norm_1.weight"),
            norm(block + "norm_attn_norm.norm_2.weight"),
            scaled(block + "norm_attn_norm.attn.Wqkv.weight", [d + 2 * kv * head_dim, d], d),
            scaled(block + "norm_attn_norm.attn.out_proj.weight", [d, d], d),
            # The router is twice as wide so that routing is decisive (stable top-k gaps).
            scaled(block + "ffn.router.layer.weight", [experts, d], d, 2.0),
            scaled(block + "ffn.experts.mlp.w1", [experts * ffn, d], d),
            scaled(block + "ffn.experts.mlp.v1", [experts * ffn, d], d),
            # w2 is applied as x @ w2: its fan-in is the ffn width.
            scaled(block + "ffn.experts.mlp.w2", [experts * ffn, d], ffn),
        ]
    return specs


def tensor_values(seed, spec):
    count = int(np.prod(spec["shape"]))
    s = steps(seed, spec["name"], count, spec["range"])
    if spec["width"] is None:
        values = 1.0 + s.astype(np.float64) / 4096.0
    else:
        values = np.rint(s.astype(np.float64) * spec["width"]) / 4096.0
    return values.astype(np.float32).reshape(spec["shape"])


def to_bf16_bits(values):
    """float32 -> bf16 bit patterns, round to nearest, ties to even (finite inputs)."""
    bits = values.astype(np.float32).view(np.uint32).astype(np.uint64)
    rounded = (bits + np.uint64(0x7FFF) + ((bits >> np.uint64(16)) & np.uint64(1))) >> np.uint64(16)
    return rounded.astype(np.uint16)


def write_safetensors(path, tensors):
    """tensors: list of (name, dtype "F32"|"BF16", shape, raw bytes), written in that order."""
    header, offset = {}, 0
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
    header["__metadata__"] = {"format": "pt"}
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for _, _, _, raw in tensors:
            f.write(raw)


def tensor_bytes(seed, spec, dtype):
    """The tensor as stored: "F32" or "BF16" and its little-endian bytes."""
    values = tensor_values(seed, spec)
    if dtype == "bfloat16":
        return "BF16", to_bf16_bits(values).astype("<u2").tobytes()
    return "F32", values.astype("<f4").tobytes()


def add_checksums(checkpoint):
    """Adds each tensor's sha256 (of its stored bytes): the C++ side checks its rebuild."""
    for spec in checkpoint["tensors"]:
        _, raw = tensor_bytes(checkpoint["seed"], spec, checkpoint["dtype"])
        spec["sha256"] = hashlib.sha256(raw).hexdigest()


def write_checkpoint(checkpoint, out_dir):
    """Writes config.json and the weights that a golden.json "checkpoint" section describes."""
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(checkpoint["config"], f, indent=2)
    tensors = []
    for spec in sorted(checkpoint["tensors"], key=lambda s: s["name"]):
        dtype, raw = tensor_bytes(checkpoint["seed"], spec, checkpoint["dtype"])
        tensors.append((spec["name"], dtype, spec["shape"], raw))
    shards = checkpoint["shards"]
    if shards == 1:
        write_safetensors(os.path.join(out_dir, "model.safetensors"), tensors)
        return
    per = math.ceil(len(tensors) / shards)
    weight_map = {}
    for i in range(shards):
        shard = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
        part = tensors[i * per:(i + 1) * per]
        write_safetensors(os.path.join(out_dir, shard), part)
        weight_map.update({t[0]: shard for t in part})
    total = sum(len(t[3]) for t in tensors)
    with open(os.path.join(out_dir, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)


def main():
    if len(sys.argv) != 3:
        raise SystemExit("usage: golden_weights.py GOLDEN_OR_SPEC.json OUT_DIR")
    with open(sys.argv[1]) as f:
        data = json.load(f)
    write_checkpoint(data.get("checkpoint", data), sys.argv[2])


if __name__ == "__main__":
    main()
