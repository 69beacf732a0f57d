#include "inference/scheduler.h"

#include <algorithm>
#include <cmath>
#include <sstream>
#include <thread>
#include <utility>

#include "common/check.h"
#include "inference/detail/scheduler_state.h"
#include "inference/detail/step_helper.h"
#include "inference/stream_decoder.h"

namespace sluice::inference {

namespace {

int32_t blocks_for(int64_t positions, int32_t block_size) {
    return static_cast<int32_t>((positions + block_size - 1) / block_size);
}

}  // namespace

Scheduler::Scheduler(Backend& backend, const Tokenizer* tokenizer, SchedulerOptions options)
    : backend_(backend),
      tokenizer_(tokenizer),
      options_(options),
      blocks_(backend.kv_cache_spec().n_blocks, backend.kv_cache_spec().block_size,
              options.prefix_caching) {
    SLUICE_CHECK(backend.kv_cache_spec().n_blocks > 0, "scheduler needs a configured kv cache");
    SLUICE_CHECK(options_.max_batch_tokens > 0 && options_.max_running > 0,
                 "scheduler limits must be positive");
    // Every running sequence's decode token must fit one step, or some would starve.
    options_.max_running = std::min(options_.max_running, options_.max_batch_tokens);
    if (options_.host_sampling_threads <= 0) {
        options_.host_sampling_threads = std::thread::hardware_concurrency() >= 2 ? 2 : 1;
    }
    options_.host_sampling_threads = std::min(options_.host_sampling_threads, 2);
    helper_ = std::make_unique<detail::StepHelper>();
}

Scheduler::~Scheduler() = default;

Status Scheduler::validate(const EngineRequest& request) const {
    const ModelConfig& config = backend_.config();
    if (request.prompt.empty()) {
        return invalid_argument("the prompt has no tokens");
    }
    for (int32_t id : request.prompt) {
        if (id < 0 || id >= config.n_vocab) {
            return invalid_argument("prompt token id " + std::to_string(id) + " outside [0, " +
                                    std::to_string(config.n_vocab) + ")");
        }
    }
    const auto n_prompt = static_cast<int64_t>(request.prompt.size());
    // Only a request that generates needs a position after its prompt.
    const bool prompt_only = request.embed || request.max_tokens == 0;
    const int64_t limit = prompt_only ? config.max_seq_len : config.max_seq_len - 1;
    if (n_prompt > limit) {
        return invalid_argument("the prompt has " + std::to_string(n_prompt) +
                                " tokens; the model's context is " +
                                std::to_string(config.max_seq_len) + " tokens" +
                                (prompt_only ? "" : " including at least one to generate"));
    }
    const int32_t needed = blocks_for(n_prompt + 1, blocks_.block_size());
    if (needed > blocks_.n_blocks()) {
        return invalid_argument("the prompt needs " + std::to_string(needed) +
                                " KV-cache blocks; the cache has " +
                                std::to_string(blocks_.n_blocks()));
    }
    if (request.prompt_logprobs < -1 || request.prompt_logprobs > 20) {
        return invalid_argument("prompt_logprobs must be in [-1, 20], found " +
                                std::to_string(request.prompt_logprobs));
    }
    if (request.embed) {
        return request.prompt_logprobs == -1
                   ? Status::ok_status()
                   : invalid_argument("an embedding request cannot score its prompt");
    }
    SLUICE_RETURN_IF_ERROR(validate_sampling(request.sampling, config.n_vocab));
    const int32_t min_tokens = request.prompt_logprobs >= 0 ? 0 : 1;
    if (request.max_tokens < min_tokens) {
        return invalid_argument("max_tokens must be >= " + std::to_string(min_tokens) +
                                (min_tokens == 0 ? "" : " (0 only when scoring the prompt)") +
                                ", found " + std::to_string(request.max_tokens));
    }
    if (request.n < 1 || request.n > 128) {
        return invalid_argument("n must be in [1, 128], found " + std::to_string(request.n));
    }
    if (!request.stop_strings.empty() && tokenizer_ == nullptr) {
        return invalid_argument("stop strings need a tokenizer; this model has none");
    }
    // Masks are sized by the model's logits; a grammar over a larger vocabulary would not fit.
    if (request.constraint && request.constraint->grammar().vocab_size() > config.n_vocab) {
        return invalid_argument("the grammar's vocabulary has " +
                                std::to_string(request.constraint->grammar().vocab_size()) +
                                " tokens; the model's has " + std::to_string(config.n_vocab));
    }
    return Status::ok_status();
}

void Scheduler::add(uint64_t id, EngineRequest params, std::shared_ptr<RequestSink> sink) {
    auto request = std::make_shared<Request>();
    request->id = id;
    request->sink = std::move(sink);
    request->arrival = next_arrival_++;
    request->usage.prompt_tokens = static_cast<int64_t>(params.prompt.size());
    if (params.timeout_s > 0) {
        request->deadline = SteadyClock::now() + std::chrono::duration_cast<SteadyClock::duration>(
                                                     std::chrono::duration<double>(params.timeout_s));
    }
    request->params = std::move(params);
    request->live = 1;

    auto seq = std::make_unique<Sequence>();
    seq->request = request;
    seq->tokens = request->params.prompt;
    seq->n_prompt = static_cast<int32_t>(seq->tokens.size());
    if (!request->params.embed) {
        seq->sampler.emplace(request->params.sampling);
        if (tokenizer_ != nullptr) {
            seq->decoder.emplace(*tokenizer_, request->params.skip_special_tokens);
            seq->stop.emplace(request->params.stop_strings);
        }
        seq->constraint = request->params.constraint;
    }
    requests_.emplace(id, std::move(request));
    insert_waiting(std::move(seq));
}

void Scheduler::insert_waiting(std::unique_ptr<Sequence> seq) {
    auto before = [](const std::unique_ptr<Sequence>& a, const std::unique_ptr<Sequence>& b) {
        if (a->priority() != b->priority()) {
            return a->priority() > b->priority();
        }
        if (a->request->arrival != b->request->arrival) {
            return a->request->arrival < b->request->arrival;
        }
        return a->choice < b->choice;
    };
    auto at = std::upper_bound(waiting_.begin(), waiting_.end(), seq, before);
    waiting_.insert(at, std::move(seq));
}

void Scheduler::sort_running() {
    std::stable_sort(running_.begin(), running_.end(), [](const auto& a, const auto& b) {
        if (a->priority() != b->priority()) {
            return a->priority() > b->priority();
        }
        if (a->request->arrival != b->request->arrival) {
            return a->request->arrival < b->request->arrival;
        }
        return a->choice < b->choice;
    });
}

bool Scheduler::idle() const { return running_.empty() && waiting_.empty(); }

SchedulerStats Scheduler::stats() const {
    SchedulerStats stats = counters_;
    stats.running = static_cast<int32_t>(running_.size());
    stats.waiting = static_cast<int32_t>(waiting_.size());
    stats.waiting_requests = 0;
    for (const auto& seq : waiting_) {
        stats.waiting_requests += seq->request->admitted_once ? 0 : 1;
    }
    stats.blocks = blocks_.stats();
    return stats;
}

void Scheduler::cancel(uint64_t id) {
    auto found = requests_.find(id);
    if (found == requests_.end()) {
        return;
    }
    finish_request(*found->second, Status(StatusCode::kCancelled, "request cancelled"));
}

void Scheduler::fail_all(const Status& status) {
    while (!requests_.empty()) {
        finish_request(*requests_.begin()->second, status);
    }
}

void Scheduler::drop_sequences_of(const Request& request) {
    for (auto* list : {&running_, &waiting_}) {
        for (auto& seq : *list) {
            if (seq->request.get() == &request && !seq->finished) {
                blocks_.release_all(seq->blocks);
                std::erase(unreleased_, seq.get());  // the request ends without that text
                seq->finished = true;
            }
        }
    }
}

void Scheduler::finish_request(Request& request, const Status& status) {
    // Keep the request alive past its erasure from requests_.
    std::shared_ptr<Request> keep = requests_.at(request.id);
    drop_sequences_of(request);
    request.live = 0;
    requests_.erase(request.id);
    std::erase_if(running_, [](const auto& seq) { return seq->finished; });
    std::erase_if(waiting_, [](const auto& seq) { return seq->finished; });
    keep->sink->on_finish(status, keep->usage, {});
}

void Scheduler::count_step(const std::vector<Planned>& plan, double seconds) {
    ++counters_.steps;
    int64_t decodes = 0;
    for (const Planned& p : plan) {
        // A decode row computes the one token a running sequence sampled last step.
        decodes += p.n_new == 1 && p.seq->n_computed >= p.seq->n_prompt ? 1 : 0;
    }
    counters_.decode_rows += decodes;
    if (decodes == static_cast<int64_t>(plan.size())) {
        ++counters_.decode_only_steps;
        counters_.decode_only_seconds += seconds;
    } else {
        ++counters_.mixed_steps;
        counters_.mixed_seconds += seconds;
    }
    counters_.longest_step_seconds = std::max(counters_.longest_step_seconds, seconds);
}

void Scheduler::expire_deadlines(SteadyClock::time_point now) {
    std::vector<std::shared_ptr<Request>> expired;
    for (const auto& [id, request] : requests_) {
        if (request->deadline && *request->deadline <= now) {
            expired.push_back(request);
        }
    }
    for (const auto& request : expired) {
        std::ostringstream limit;
        limit << request->params.timeout_s;  // "0.3", "600": the limit as it was set
        finish_request(*request, Status(StatusCode::kDeadlineExceeded,
                                        "request timed out after " + limit.str() + " s"));
    }
}

Status Scheduler::fail_step(const std::vector<Planned>& plan, const Status& why) {
    std::vector<std::shared_ptr<Request>> failed;
    for (const Planned& p : plan) {
        if (std::find(failed.begin(), failed.end(), p.seq->request) == failed.end()) {
            failed.push_back(p.seq->request);
        }
    }
    for (const auto& request : failed) {
        if (requests_.contains(request->id)) {
            finish_request(*request, why);
        }
    }
    return why;
}

Result<bool> Scheduler::step() {
    expire_deadlines(SteadyClock::now());
    std::vector<Planned> plan;
    int32_t budget = options_.max_batch_tokens;
    plan_running(plan, budget);
    if (!copy_failure_.ok()) {
        return fail_step(plan, std::exchange(copy_failure_, Status::ok_status()));
    }
    admit_waiting(plan, budget);
    // Sequences preempted while planning wait for a later step.
    for (auto& seq : running_) {
        if (seq->preempted && !seq->finished) {
            seq->preempted = false;
            insert_waiting(std::move(seq));
        }
    }
    std::erase_if(running_, [](const auto& seq) { return seq == nullptr || seq->finished; });
    sort_running();
    if (plan.empty()) {
        // No pass to overlap with: what the last step sampled is released now.
        return release_now();
    }
    const auto step_start = SteadyClock::now();

    ForwardBatch batch;
    // Entries past the backend's device-sampling capacity get their row and sample on the host.
    int64_t device_sampling_left = backend_.device_sample_capacity();
    for (const Planned& p : plan) {
        Sequence& seq = *p.seq;
        const bool last = p.n_new == seq.remaining();
        const bool embed = seq.request->params.embed;
        // A prompt being scored needs every row of its chunk (after_forward scores them).
        const bool scored = seq.request->scores_prompt();
        const LogitsRows rows = scored           ? LogitsRows::kAll
                                : last && !embed ? LogitsRows::kLast
                                                 : LogitsRows::kNone;
        batch.sequences.push_back({std::span<const int32_t>(seq.tokens.data() + seq.n_computed,
                                                            static_cast<size_t>(p.n_new)),
                                   seq.n_computed, seq.blocks, rows, embed});
        if (last && !scored && device_sampling_left > 0 && samples_on_device(seq)) {
            --device_sampling_left;
            // Drawn here from the sequence's own stream, as Sampler::sample would draw it, so a
            // seed gives the same tokens whichever side chooses.
            const SamplingParams& sp = seq.request->params.sampling;
            const double u = seq.sampler->greedy() ? 0.0 : seq.sampler->next_uniform();
            batch.device_sample.resize(plan.size());
            batch.device_sample[batch.sequences.size() - 1] =
                DeviceSampling{sp.temperature, sp.top_k, sp.top_p, sp.min_p, u};
        }
    }
    // The token masks of the sequences about to sample are made while the forward pass runs:
    // they depend on the tokens accepted so far, not on the logits (docs/grammar.md).
    std::vector<Sequence*> masked;
    for (const Planned& p : plan) {
        Sequence& seq = *p.seq;
        seq.mask_ready = false;
        const bool samples = p.n_new == seq.remaining() && !seq.request->params.embed;
        // A request about to fork its n choices masks each copy itself, at the fork.
        const bool forks = seq.request->params.n > 1 && !seq.request->forked;
        if (samples && seq.constraint && !forks) {
            masked.push_back(&seq);
        }
    }
    // Beside the pass, on the helper: the text of the tokens the last step sampled (output
    // overlap), then the masks. Each touches only its sequences' decoder, stop matcher and sink,
    // or matcher and mask, which nothing else touches until the helper is done.
    std::vector<Sequence*> releasing = std::exchange(unreleased_, {});
    const bool helped = !masked.empty() || !releasing.empty();
    if (helped) {
        const auto words = static_cast<size_t>((backend_.config().n_vocab + 63) / 64);
        helper_->start([this, &masked, &releasing, words] {
            for (Sequence* seq : releasing) {
                release_output(*seq);
            }
            for (Sequence* seq : masked) {
                seq->mask.assign(words, 0);
                seq->constraint->fill_next_token_mask(seq->mask);
                seq->mask_ready = true;
            }
        });
    }
    const auto forward_start = SteadyClock::now();
    Result<ForwardOutput> out = backend_.forward(batch);
    const auto forward_end = SteadyClock::now();
    count_step(plan, std::chrono::duration<double>(forward_end - forward_start).count());
    if (helped) {
        helper_->wait();
    }
    counters_.overlapped_outputs += static_cast<int64_t>(releasing.size());
    finish_stopped(releasing);
    if (!out.ok()) {
        return fail_step(plan, out.status());
    }
    after_forward(plan, *out);
    std::erase_if(running_, [](const auto& seq) { return seq->finished; });
    std::erase_if(waiting_, [](const auto& seq) { return seq->finished; });
    sort_running();
    const auto step_end = SteadyClock::now();
    counters_.host_seconds +=
        std::chrono::duration<double>((forward_start - step_start) + (step_end - forward_end))
            .count();
    return true;
}

bool Scheduler::release_now() {
    if (unreleased_.empty()) {
        return false;
    }
    std::vector<Sequence*> releasing = std::exchange(unreleased_, {});
    for (Sequence* seq : releasing) {
        release_output(*seq);
    }
    finish_stopped(releasing);
    std::erase_if(running_, [](const auto& seq) { return seq->finished; });
    std::erase_if(waiting_, [](const auto& seq) { return seq->finished; });
    return true;
}

}  // namespace sluice::inference
