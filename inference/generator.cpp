#include "inference/generator.h"

#include <algorithm>
#include <chrono>
#include <optional>

namespace sluice::inference {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
    return std::chrono::duration<double>(Clock::now() - start).count();
}

struct Running {
    const GenerationRequest* request;
    Sampler sampler;
    SequenceBlocks blocks;
    GenerationResult result;
    std::vector<int32_t> emitted;  // every sampled token, stop tokens included (for penalties)
    std::vector<uint64_t> mask;    // [ceil(n_vocab / 64)] when constrained
    bool done = false;
};

// Samples the next token of `run`, under its constraint's mask when it has one; nullopt when
// the constraint allows no token at all.
std::optional<SampledToken> sample_next(Running& run, std::span<const float> logits) {
    TokenConstraint* constraint = run.request->constraint;
    if (constraint == nullptr) {
        return run.sampler.sample(logits, run.request->prompt, run.emitted);
    }
    run.mask.assign((logits.size() + 63) / 64, 0);
    constraint->fill_next_token_mask(run.mask);
    if (std::all_of(run.mask.begin(), run.mask.end(), [](uint64_t w) { return w == 0; })) {
        return std::nullopt;
    }
    return run.sampler.sample(logits, run.request->prompt, run.emitted, run.mask);
}

// Feeds the token to the constraint; it was sampled under its mask, so a refusal is a bug in
// the constraint, reported rather than followed.
Status constrain(Running& run, const SampledToken& token) {
    if (run.request->constraint == nullptr) {
        return Status::ok_status();
    }
    Status status = run.request->constraint->accept_token(token.id);
    if (!status.ok()) {
        return internal_error("generate: the token constraint refused token " +
                              std::to_string(token.id) + " it allowed: " + status.message());
    }
    return status;
}

Status validate_request(const GenerationRequest& request, const ModelConfig& config) {
    if (request.prompt.empty()) {
        return invalid_argument("generate: the prompt has no tokens");
    }
    if (request.max_tokens < 1) {
        return invalid_argument("generate: max_tokens must be >= 1, found " +
                                std::to_string(request.max_tokens));
    }
    SLUICE_RETURN_IF_ERROR(validate_sampling(request.sampling, config.n_vocab));
    auto in_vocab = [&](int32_t id) { return id >= 0 && id < config.n_vocab; };
    for (int32_t id : request.prompt) {
        if (!in_vocab(id)) {
            return invalid_argument("generate: prompt token id " + std::to_string(id) +
                                    " outside [0, " + std::to_string(config.n_vocab) + ")");
        }
    }
    if (static_cast<int64_t>(request.prompt.size()) >= config.max_seq_len) {
        return invalid_argument("generate: prompt of " + std::to_string(request.prompt.size()) +
                                " tokens leaves no room under max_seq_len " +
                                std::to_string(config.max_seq_len));
    }
    for (const auto& sequence : request.stop_sequences) {
        if (sequence.empty()) {
            return invalid_argument("generate: an empty stop sequence");
        }
    }
    return Status::ok_status();
}

// Records a sampled token and decides whether the sequence ends with it.
void accept(Running& run, const SampledToken& token, int64_t max_seq_len) {
    const GenerationRequest& request = *run.request;
    run.emitted.push_back(token.id);
    if (std::find(request.stop_tokens.begin(), request.stop_tokens.end(), token.id) !=
        request.stop_tokens.end()) {
        run.result.finish = FinishReason::kStopToken;
        run.done = true;
        return;
    }
    run.result.ids.push_back(token.id);
    run.result.tokens.push_back(token);
    for (const auto& stop : request.stop_sequences) {
        if (run.result.ids.size() >= stop.size() &&
            std::equal(stop.rbegin(), stop.rend(), run.result.ids.rbegin())) {
            run.result.ids.resize(run.result.ids.size() - stop.size());
            run.result.tokens.resize(run.result.ids.size());
            run.result.finish = FinishReason::kStopSequence;
            run.done = true;
            return;
        }
    }
    if (request.on_token && !request.on_token(token)) {
        run.result.finish = FinishReason::kCancelled;
        run.done = true;
        return;
    }
    if (request.text_stop != nullptr && request.text_stop->on_token(token.id)) {
        run.result.finish = FinishReason::kStopText;
        run.done = true;
        return;
    }
    const auto length = static_cast<int64_t>(request.prompt.size() + run.emitted.size());
    if (static_cast<int32_t>(run.emitted.size()) >= request.max_tokens || length >= max_seq_len) {
        run.result.finish = FinishReason::kLength;
        run.done = true;
    }
}

// One sampled token for `run`: drawn, fed to the constraint, recorded.
Status step(Running& run, std::span<const float> logits, int64_t max_seq_len) {
    std::optional<SampledToken> token = sample_next(run, logits);
    if (!token) {
        run.result.finish = FinishReason::kStopToken;
        run.done = true;
        return Status::ok_status();
    }
    SLUICE_RETURN_IF_ERROR(constrain(run, *token));
    accept(run, *token, max_seq_len);
    return Status::ok_status();
}

}  // namespace

std::string_view finish_reason_name(FinishReason reason) {
    switch (reason) {
        case FinishReason::kStopToken:
        case FinishReason::kStopSequence:
        case FinishReason::kStopText: return "stop";
        case FinishReason::kLength: return "length";
        case FinishReason::kCancelled: return "cancelled";
    }
    return "unknown";
}

double Timings::prefill_tokens_per_second() const {
    return prefill_seconds > 0 ? static_cast<double>(prefill_tokens) / prefill_seconds : 0;
}

double Timings::decode_tokens_per_second() const {
    return decode_seconds > 0 ? static_cast<double>(decode_tokens) / decode_seconds : 0;
}

Result<BatchGenerationResult> generate_batch(Backend& backend, KvBlockPool& pool,
                                             std::span<const GenerationRequest> requests) {
    const ModelConfig& config = backend.config();
    std::vector<Running> runs;
    runs.reserve(requests.size());
    for (const GenerationRequest& request : requests) {
        SLUICE_RETURN_IF_ERROR(validate_request(request, config));
        runs.push_back({&request, Sampler(request.sampling), SequenceBlocks(&pool), {}, {}, {}});
        runs.back().result.usage.prompt_tokens = static_cast<int64_t>(request.prompt.size());
        // The last sampled token is never fed back, so prompt + max_tokens - 1 positions suffice.
        SLUICE_RETURN_IF_ERROR(runs.back().blocks.reserve(
            std::min<int64_t>(static_cast<int64_t>(request.prompt.size()) + request.max_tokens - 1,
                              config.max_seq_len)));
    }

    BatchGenerationResult out;
    // Prefill every prompt in one step; each sequence samples its first token from it.
    auto start = Clock::now();
    ForwardBatch batch;
    for (Running& run : runs) {
        batch.sequences.push_back({run.request->prompt, 0, run.blocks.table(), LogitsRows::kLast});
        out.timings.prefill_tokens += static_cast<int64_t>(run.request->prompt.size());
    }
    SLUICE_ASSIGN_OR_RETURN(ForwardOutput logits, backend.forward(batch));
    for (size_t s = 0; s < runs.size(); ++s) {
        Running& run = runs[s];
        SLUICE_RETURN_IF_ERROR(step(run, logits.row(s), config.max_seq_len));
    }
    out.timings.prefill_seconds = seconds_since(start);

    start = Clock::now();
    while (true) {
        batch.sequences.clear();
        std::vector<size_t> active;
        for (size_t s = 0; s < runs.size(); ++s) {
            Running& run = runs[s];
            if (run.done) {
                continue;
            }
            const auto n_past = static_cast<int32_t>(run.request->prompt.size() +
                                                     run.emitted.size() - 1);
            batch.sequences.push_back({std::span<const int32_t>(&run.emitted.back(), 1), n_past,
                                       run.blocks.table(), LogitsRows::kLast});
            active.push_back(s);
        }
        if (active.empty()) {
            break;
        }
        SLUICE_ASSIGN_OR_RETURN(logits, backend.forward(batch));
        for (size_t i = 0; i < active.size(); ++i) {
            SLUICE_RETURN_IF_ERROR(step(runs[active[i]], logits.row(i), config.max_seq_len));
            ++out.timings.decode_tokens;
        }
    }
    out.timings.decode_seconds = seconds_since(start);
    for (Running& run : runs) {
        run.result.usage.completion_tokens = static_cast<int64_t>(run.emitted.size());
        out.results.push_back(std::move(run.result));
    }
    return out;
}

Result<GenerationResult> generate(Backend& backend, KvBlockPool& pool,
                                  const GenerationRequest& request, Timings* timings) {
    SLUICE_ASSIGN_OR_RETURN(BatchGenerationResult batch,
                            generate_batch(backend, pool, std::span(&request, 1)));
    if (timings != nullptr) {
        *timings = batch.timings;
    }
    return std::move(batch.results.front());
}

}  // namespace sluice::inference
