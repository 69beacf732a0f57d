#pragma once
// The state behind Scheduler's private declarations, shared by scheduler.cpp and
// scheduler_plan.cpp. Owned by the scheduler's thread like the scheduler itself.

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "inference/scheduler.h"
#include "inference/stream_decoder.h"

namespace sluice::inference {

struct Scheduler::Request {
    uint64_t id = 0;
    EngineRequest params;
    std::shared_ptr<RequestSink> sink;
    std::optional<SteadyClock::time_point> deadline;
    uint64_t arrival = 0;
    Usage usage;
    int32_t live = 0;  // sequences not yet finished
    bool forked = false;
    bool admitted_once = false;
    std::vector<double> embedding_sum;  // [n_embd]
    // Prompt scoring (EngineRequest::prompt_logprobs): scores of prompt tokens 1 .. so far, kept
    // across preemption; handed to the sink once complete.
    std::vector<SampledToken> prompt_scores;
    bool prompt_scores_sent = false;

    // Whether prompt positions from `n_computed` on still need their logits to be scored.
    bool scores_prompt() const {
        return params.prompt_logprobs >= 0 && !prompt_scores_sent &&
               std::ssize(prompt_scores) + 1 < std::ssize(params.prompt);
    }
};

struct Scheduler::Sequence {
    std::shared_ptr<Request> request;
    int32_t choice = 0;
    std::vector<int32_t> tokens;  // the prompt, then every sampled token fed back
    int32_t n_prompt = 0;
    int32_t n_computed = 0;  // leading positions whose K and V are in `blocks`
    std::vector<int32_t> blocks;
    std::vector<BlockKey> keys;      // prefix-cache keys of the leading full blocks
    std::vector<int32_t> generated;  // every sampled token, stop tokens included (penalties)
    std::optional<Sampler> sampler;
    std::optional<StreamDecoder> decoder;
    std::optional<StopMatcher> stop;
    std::optional<GrammarMatcher> constraint;  // this choice's own matcher
    std::vector<uint64_t> mask;                // [ceil(n_vocab / 64)] scratch for constraint
    bool mask_ready = false;  // `mask` holds the constraint's current mask (made during forward)
    // Output overlap (scheduler.h): a sampled token whose text is not released yet; once
    // released, whether it completed a stop string, and the event that then ends the sequence.
    std::optional<SampledToken> unreleased;
    bool stop_found = false;
    StreamEvent stop_event;
    bool preempted = false;
    bool finished = false;

    int32_t remaining() const { return static_cast<int32_t>(tokens.size()) - n_computed; }
    // Detokenises `id` into event.text, cut before a stop string; true when one completed.
    // Precondition: decoder (and so stop) is set.
    bool release_text(int32_t id, StreamEvent& event) {
        Result<std::string> piece = decoder->push(id);
        if (!piece.ok()) {
            return false;
        }
        StopResult cut = stop->push(*piece);
        event.text = std::move(cut.text);
        return cut.stopped;
    }
    int32_t priority() const { return request->params.priority; }
};

struct Scheduler::Planned {
    Sequence* seq = nullptr;
    int32_t n_new = 0;
};

}  // namespace sluice::inference
