#pragma once
// Sampling rows of logits on the device: the CPU Sampler's choice (sampling.h) given the same
// uniform draw, without penalties, token masks or top logprobs (a sequence that needs those is
// sampled on the host).
//
// Exactness. Every step that decides the choice is done in the Sampler's order and precision:
// (l - max) / T in fp32, candidates in id order (plain, min-p) or sorted by decreasing
// probability with ties to the lower id (top-k, top-p; CUB's stable radix sort of ids by
// probability), and the totals, the top-p cut and the draw as serial double sums over the
// candidates in that order, by one thread. The one difference is exp: the device rounds the
// double exponential to fp32, the host calls the C library's expf; both are within half an ulp
// and agree except in rare double-rounding cases, which can move a choice only when the draw
// lands within about 1e-7 of the mass of a boundary between two candidates.
// The logprob's log-sum-exp is a parallel double sum, so it may differ from the host's in the
// last bits of the double (far below fp32).
//
// Host launchers: check shapes, launch on `stream`, return the launch error.

#include <cstddef>
#include <cstdint>

#include "common/result.h"
#include "inference/cuda/cuda_check.h"

namespace sluice::inference::cuda {

struct DeviceSampleRequest {
    int32_t row = 0;  // row of `logits`
    float temperature = 1.0f;
    int32_t top_k = 0;
    float top_p = 1.0f;
    float min_p = 0.0f;
    double u = 0;  // the draw in [0, 1); unused when greedy
};

struct DeviceSampleResult {
    int32_t id = 0;
    float logprob = 0;  // log-softmax of the raw logits at id
};

// Bytes of device workspace sample_rows needs for `n` requests over `n_vocab` logits.
Result<size_t> sample_rows_workspace_bytes(int64_t n, int64_t n_vocab);

// results[i] = the choice for requests[i] on row requests[i].row of logits.
// logits: [*, n_vocab]; requests, results: [n] device arrays; `any_sorted`: some request has
// top_k > 0 or top_p < 1 (and is not greedy), so the sort runs.
Status sample_rows(const float* logits, int64_t n_vocab, const DeviceSampleRequest* requests,
                   int64_t n, bool any_sorted, void* workspace, size_t workspace_bytes,
                   DeviceSampleResult* results, cudaStream_t stream);

}  // namespace sluice::inference::cuda
