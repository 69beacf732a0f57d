#pragma once
// `sluice bench decode --backend cuda`: decode speed of the CUDA backend on a model of DBRX's
// exact layer sizes (d_model 6144, 48 heads, 8 KV heads, 16 experts of 10,752, top-4, vocabulary
// 100,352) with `--layers` layers and random weights made on the GPU, at several batch sizes and
// weight formats.
//
// Each batch: every sequence prefills a random prompt, then decodes greedily with the token
// chosen on the device (only ids come back), a few warm-up steps and then `--decode-tokens` timed
// steps. Reported per format and batch: tokens/s, time per step and per layer (step / layers,
// lm_head included, as the anchor script counts it), the weight bytes a step reads (dense
// weights, lm_head and the experts the batch is expected to touch under uniform routing:
// 16 · (1 - (12/16)^batch) per layer) over the step time, and that bandwidth against the GPU's
// datasheet peak (--peak-gb-s overrides it).
//
// --graphs on|off|both: decode steps replay CUDA graphs (CudaBackendOptions::decode_graphs) or
// launch kernel by kernel; `both` (the default) measures each batch size whose steps replayed a
// graph a second time with graphs off, on the same backend and weights. The "graphs" column says
// on, off, or n/a where graphs were on but no step could replay one (a batch size that is not
// captured, or experts on the tensor cores).
//
// --split-k auto|off|both: attention as the backend chooses (split-K for few tokens over contexts
// of more than 512 positions) or always the one-pass kernel; `both` measures each batch both
// ways. Split-K matters only with long prompts (--prompt-tokens).
//
// --int4-kernel cuda-cores|mma|both: int4 experts of decode steps on the CUDA-core kernels (the
// backend's default) or on the tensor cores (CudaBackendOptions::int4_mma_experts); `both`
// measures each int4 batch both ways, the tensor-core rows labelled "int4 mma". Other formats
// ignore it.
//
// --anchor FILE reads the JSON line of tools/bench/hf_dbrx_eager.py (Hugging Face eager
// DbrxForCausalLM on the same GPU, layers, batches and prompt length) and adds the speed-up over
// it per batch.

#include "app/cli.h"

namespace sluice::app {

struct CudaDecodeBenchOptions {
    int layers = 4;
    std::string weights = "bf16,fp8";
    std::string batches = "1,8,32,128";
    int32_t prompt_tokens = 32;
    int32_t decode_tokens = 16;
    int32_t warmup_tokens = 3;
    std::string anchor;
    double peak_gb_s = 0;  // 0: from the GPU's name
    std::string graphs = "both";  // on | off | both
    std::string split_k = "auto";  // auto | off | both
    std::string int4_kernel = "cuda-cores";  // cuda-cores | mma | both
    bool json = false;
};

int run_cuda_decode_bench(const CudaDecodeBenchOptions& options);

}  // namespace sluice::app
