// Scheduler, second half: choosing what one step computes (blocks, preemption, admission) and
// taking its output (sampling, forks, stops, embeddings). See scheduler.h for the policy.
#include <algorithm>
#include <cmath>

#include "common/check.h"
#include "inference/detail/scheduler_state.h"
#include "inference/detail/step_helper.h"
#include "inference/scheduler.h"

namespace sluice::inference {

namespace {

int32_t blocks_for(int64_t positions, int32_t block_size) {
    return static_cast<int32_t>((positions + block_size - 1) / block_size);
}

// A scored prompt's chunk returns a row of logits per token: at most this many rows a step
// (51 MB of fp32 rows at a 100,352-token vocabulary), whatever the step's token budget.
constexpr int32_t kMaxScoredRows = 128;

}  // namespace

int32_t Scheduler::chunk_size(const Sequence& seq, int32_t budget) const {
    const int32_t n_new = std::min(seq.remaining(), budget);
    return seq.request->scores_prompt() ? std::min(n_new, kMaxScoredRows) : n_new;
}

bool Scheduler::plan_running(std::vector<Planned>& plan, int32_t& budget) {
    // Decodes first, so that prompt chunks never delay a running sequence's next token.
    for (const bool decode_pass : {true, false}) {
        for (size_t i = 0; i < running_.size() && budget > 0; ++i) {
            Sequence& seq = *running_[i];
            if (seq.finished || seq.preempted || (seq.remaining() == 1) != decode_pass) {
                continue;
            }
            const int32_t n_new = chunk_size(seq, budget);
            if (reserve(seq, n_new, plan, /*priority_floor=*/INT32_MIN)) {
                plan.push_back({&seq, n_new});
                budget -= n_new;
                continue;
            }
            if (!copy_failure_.ok()) {
                plan.push_back({&seq, 0});  // failed with the step, not run
                return true;
            }
            const bool alone = std::none_of(running_.begin(), running_.end(), [&](const auto& o) {
                return o.get() != &seq && !o->finished && !o->preempted;
            });
            if (alone) {
                // Even the whole cache cannot hold this sequence one token longer.
                finish_sequence(seq, FinishReason::kLength, StreamEvent{seq.choice, {}, {}, {}});
                continue;
            }
            preempt(seq);
        }
    }
    return !plan.empty();
}

void Scheduler::admit_waiting(std::vector<Planned>& plan, int32_t& budget) {
    const int32_t bs = blocks_.block_size();
    auto live_running = [&] {
        return std::count_if(running_.begin(), running_.end(), [](const auto& seq) {
            return seq && !seq->finished && !seq->preempted;
        });
    };
    while (!waiting_.empty() && budget > 0 && live_running() < options_.max_running) {
        Sequence& seq = *waiting_.front();
        Request& request = *seq.request;
        const bool embed = request.params.embed;
        // At least the last token is computed here: its logits pick the next one. A prompt
        // being scored computes at least the positions whose rows score unscored tokens (the
        // row at position p scores token p + 1).
        int32_t max_match = embed ? 0 : (static_cast<int32_t>(seq.tokens.size()) - 1) / bs;
        if (request.scores_prompt()) {
            max_match =
                std::min(max_match, static_cast<int32_t>(request.prompt_scores.size()) / bs);
        }
        seq.keys.clear();
        seq.blocks = blocks_.match_prefix(seq.tokens, max_match, &seq.keys);
        seq.n_computed = static_cast<int32_t>(seq.blocks.size()) * bs;
        // Admit only what fits whole, so that a new prompt does not push a running one out.
        const int32_t need =
            blocks_for(static_cast<int64_t>(seq.tokens.size()), bs) -
            static_cast<int32_t>(seq.blocks.size());
        while (blocks_.n_available() < need) {
            Sequence* victim = pick_victim(seq, plan, seq.priority());
            if (victim == nullptr) {
                break;
            }
            preempt(*victim);
        }
        const int32_t n_new = chunk_size(seq, budget);
        if (blocks_.n_available() < need || !reserve(seq, n_new, plan, seq.priority())) {
            blocks_.release_all(seq.blocks);
            seq.keys.clear();
            seq.n_computed = 0;
            return;  // head-of-line: later arrivals wait behind it
        }
        if (!request.admitted_once) {
            request.admitted_once = true;
            request.usage.cached_tokens = seq.n_computed;
        }
        counters_.cached_prompt_tokens += seq.n_computed;
        plan.push_back({&seq, n_new});
        budget -= n_new;
        running_.push_back(std::move(waiting_.front()));
        waiting_.erase(waiting_.begin());
    }
}

bool Scheduler::reserve(Sequence& seq, int32_t n_new, const std::vector<Planned>& plan,
                        int32_t priority_floor) {
    const int32_t bs = blocks_.block_size();
    const int32_t total = blocks_for(static_cast<int64_t>(seq.n_computed) + n_new, bs);
    while (true) {
        const int32_t fresh = total - static_cast<int32_t>(seq.blocks.size());
        // Only the partly filled block at n_computed can be shared and written (prefix hits and
        // forks share whole blocks; later blocks are allocated here).
        const size_t partial = static_cast<size_t>(seq.n_computed / bs);
        const bool copy = seq.n_computed % bs != 0 && partial < seq.blocks.size() &&
                          blocks_.needs_copy(seq.blocks[partial]);
        const int32_t needed = std::max(fresh, 0) + (copy ? 1 : 0);
        if (blocks_.n_available() >= needed) {
            if (copy) {
                auto fresh_block = blocks_.allocate(1);
                SLUICE_CHECK(fresh_block.ok(), "available block vanished");
                const Status copied = backend_.copy_kv_block(seq.blocks[partial], (*fresh_block)[0]);
                if (!copied.ok()) {
                    // The blocks are valid, so the backend has stopped (a parallel group that
                    // aborted): the step fails with its reason, as a failed forward does.
                    blocks_.release((*fresh_block)[0]);
                    copy_failure_ = copied;
                    return false;
                }
                blocks_.release(seq.blocks[partial]);
                seq.blocks[partial] = (*fresh_block)[0];
            }
            if (fresh > 0) {
                auto more = blocks_.allocate(fresh);
                SLUICE_CHECK(more.ok(), "available blocks vanished");
                seq.blocks.insert(seq.blocks.end(), more->begin(), more->end());
            }
            return true;
        }
        Sequence* victim = pick_victim(seq, plan, priority_floor);
        if (victim == nullptr) {
            return false;
        }
        preempt(*victim);
    }
}

Scheduler::Sequence* Scheduler::pick_victim(const Sequence& for_seq,
                                            const std::vector<Planned>& plan,
                                            int32_t priority_floor) {
    // Order: priority high to low, then arrival, then choice. The victim is the last running
    // sequence after `for_seq` in that order (or, for admission, of lower priority) that this
    // step has not planned.
    auto later = [](const Sequence& a, const Sequence& b) {
        if (a.priority() != b.priority()) {
            return a.priority() < b.priority();
        }
        if (a.request->arrival != b.request->arrival) {
            return a.request->arrival > b.request->arrival;
        }
        return a.choice > b.choice;
    };
    Sequence* victim = nullptr;
    for (auto& candidate : running_) {
        if (!candidate || candidate.get() == &for_seq || candidate->finished ||
            candidate->preempted || candidate->blocks.empty()) {
            continue;
        }
        const bool planned = std::any_of(plan.begin(), plan.end(), [&](const Planned& p) {
            return p.seq == candidate.get();
        });
        if (planned) {
            continue;
        }
        const bool eligible = priority_floor == INT32_MIN
                                  ? later(*candidate, for_seq)
                                  : candidate->priority() < priority_floor;
        if (eligible && (victim == nullptr || later(*candidate, *victim))) {
            victim = candidate.get();
        }
    }
    return victim;
}

void Scheduler::preempt(Sequence& seq) {
    blocks_.release_all(seq.blocks);
    seq.keys.clear();
    seq.n_computed = 0;
    seq.preempted = true;
    ++counters_.preemptions;
}

std::vector<std::optional<SampledToken>> Scheduler::choose_plain(
    const std::vector<Planned>& plan, const ForwardOutput& out) {
    std::vector<size_t> rows;
    for (size_t i = 0; i < plan.size(); ++i) {
        const Sequence& seq = *plan[i].seq;
        const bool samples = !seq.finished && !seq.request->params.embed &&
                             plan[i].n_new == seq.remaining() && seq.sampler.has_value();
        const bool on_device = i < out.sampled.size() && out.sampled[i].id >= 0;
        const bool forks = seq.request->params.n > 1 && !seq.request->forked;
        const bool one_row = out.n_rows[i] == 1;  // not a scored prompt's chunk
        if (samples && !on_device && !forks && !seq.constraint && one_row &&
            seq.request->params.max_tokens > 0) {
            rows.push_back(i);
        }
    }
    std::vector<std::optional<SampledToken>> chosen(plan.size());
    // Each sequence's choice reads only its own row, tokens and sampler: the two halves are
    // independent, and the choices are the ones sample() would make one by one.
    auto choose = [&](size_t from, size_t to) {
        for (size_t k = from; k < to; ++k) {
            const size_t i = rows[k];
            Sequence& seq = *plan[i].seq;
            const std::span<const int32_t> prompt(seq.tokens.data(),
                                                  static_cast<size_t>(seq.n_prompt));
            chosen[i] = seq.sampler->sample(out.row(i), prompt, seq.generated);
        }
    };
    if (rows.size() < 2 || options_.host_sampling_threads < 2) {
        choose(0, rows.size());
        return chosen;
    }
    const size_t half = rows.size() / 2;
    helper_->start([&] { choose(0, half); });
    choose(half, rows.size());
    helper_->wait();
    return chosen;
}

void Scheduler::after_forward(std::vector<Planned>& plan, const ForwardOutput& out) {
    score_prompts(plan, out);
    const std::vector<std::optional<SampledToken>> chosen = choose_plain(plan, out);
    for (size_t i = 0; i < plan.size(); ++i) {
        Sequence& seq = *plan[i].seq;
        if (seq.finished) {
            continue;
        }
        const int32_t before = seq.n_computed;
        seq.n_computed += plan[i].n_new;
        counters_.prompt_tokens += std::max(0, std::min(seq.n_computed, seq.n_prompt) - before);
        publish_full_blocks(seq);
        Request& request = *seq.request;
        if (request.params.prompt_logprobs >= 0 && !request.prompt_scores_sent &&
            seq.n_computed >= seq.n_prompt) {
            request.prompt_scores_sent = true;
            request.sink->on_prompt_logprobs(std::move(request.prompt_scores));
        }
        if (request.params.embed) {
            request.embedding_sum.resize(static_cast<size_t>(out.n_embd), 0.0);
            for (int64_t r = 0; r < out.hidden_n_rows[i]; ++r) {
                auto row = out.hidden_row(i, r);
                for (size_t j = 0; j < row.size(); ++j) {
                    request.embedding_sum[j] += row[j];
                }
            }
            if (seq.remaining() == 0) {
                finish_embedding(seq);
            }
            continue;
        }
        if (seq.remaining() == 0) {
            if (request.params.max_tokens == 0) {
                finish_unsampled(seq);
            } else if (chosen[i]) {
                accept(seq, *chosen[i]);
            } else if (i < out.sampled.size() && out.sampled[i].id >= 0) {
                accept(seq, SampledToken{out.sampled[i].id, out.sampled[i].logprob, {}});
            } else {
                sample(seq, out.row(i, out.n_rows[i] - 1));
            }
        }
    }
}

void Scheduler::score_prompts(const std::vector<Planned>& plan, const ForwardOutput& out) {
    // The rows of a scored chunk at positions before .. before + n_new - 1 score the prompt
    // tokens after them; tokens scored before a preemption are not scored again.
    struct Job {
        std::span<const float> row;
        int32_t id;
        int32_t top_n;
        SampledToken* into;
    };
    std::vector<Job> jobs;
    for (size_t i = 0; i < plan.size(); ++i) {
        Sequence& seq = *plan[i].seq;
        Request& request = *seq.request;
        if (seq.finished || !request.scores_prompt()) {
            continue;
        }
        // The step asked for every row of this chunk (Scheduler::step).
        SLUICE_CHECK(out.n_rows[i] == plan[i].n_new, "a scored chunk came back without its rows");
        const auto scored = static_cast<int32_t>(request.prompt_scores.size());
        const int32_t first = std::max(seq.n_computed, scored);  // position of the first row used
        const int32_t end = std::min(seq.n_computed + plan[i].n_new, seq.n_prompt - 1);
        if (end <= first) {
            continue;
        }
        request.prompt_scores.resize(static_cast<size_t>(end));
        for (int32_t p = first; p < end; ++p) {
            jobs.push_back({out.row(i, p - seq.n_computed), seq.tokens[static_cast<size_t>(p) + 1],
                            request.params.prompt_logprobs,
                            &request.prompt_scores[static_cast<size_t>(p)]});
        }
    }
    // Each job reads one row and writes its own score: the helper takes half of them.
    auto run = [&](size_t from, size_t to) {
        for (size_t k = from; k < to; ++k) {
            *jobs[k].into = score_token(jobs[k].row, jobs[k].id, jobs[k].top_n);
        }
    };
    if (jobs.size() < 2 || options_.host_sampling_threads < 2) {
        run(0, jobs.size());
        return;
    }
    const size_t half = jobs.size() / 2;
    helper_->start([&] { run(0, half); });
    run(half, jobs.size());
    helper_->wait();
}

void Scheduler::finish_unsampled(Sequence& seq) {
    // A prompt scored with max_tokens 0: nothing is sampled, so no fork; every choice ends.
    Request& request = *seq.request;
    for (int32_t c = 1; c < request.params.n; ++c) {
        request.sink->on_event(StreamEvent{c, {}, {}, FinishReason::kLength});
    }
    finish_sequence(seq, FinishReason::kLength, StreamEvent{seq.choice, {}, {}, {}});
}

void Scheduler::finish_embedding(Sequence& seq) {
    Request& request = *seq.request;
    // Mean over the prompt's positions, then unit L2 norm (cosine similarity is a dot product).
    std::vector<float> embedding(request.embedding_sum.size());
    double norm = 0;
    for (size_t j = 0; j < embedding.size(); ++j) {
        const double mean = request.embedding_sum[j] / static_cast<double>(seq.n_prompt);
        embedding[j] = static_cast<float>(mean);
        norm += mean * mean;
    }
    norm = std::sqrt(norm);
    for (float& value : embedding) {
        value = norm > 0 ? static_cast<float>(value / norm) : 0.0f;
    }
    blocks_.release_all(seq.blocks);
    seq.finished = true;
    request.live = 0;
    std::shared_ptr<Request> keep = seq.request;
    requests_.erase(request.id);
    keep->sink->on_finish(Status::ok_status(), keep->usage, std::move(embedding));
}

void Scheduler::publish_full_blocks(Sequence& seq) {
    const int32_t bs = blocks_.block_size();
    while ((static_cast<int32_t>(seq.keys.size()) + 1) * bs <= seq.n_computed) {
        const size_t i = seq.keys.size();
        const BlockKey parent = i == 0 ? 0 : seq.keys[i - 1];
        seq.keys.push_back(blocks_.publish(
            parent, std::span<const int32_t>(seq.tokens).subspan(i * bs, static_cast<size_t>(bs)),
            seq.blocks[i]));
    }
}

bool Scheduler::samples_on_device(const Sequence& seq) const {
    // Only what the device does without the row: no penalties (they need the sequence's
    // tokens), no logit bias, no grammar mask, no top logprobs, no fork (n choices share the row),
    // no embedding (no row at all).
    const EngineRequest& params = seq.request->params;
    const SamplingParams& sp = params.sampling;
    const bool forks = params.n > 1 && !seq.request->forked;
    return backend_.samples_on_device() && !params.embed && !forks && !seq.constraint &&
           params.max_tokens > 0 && !seq.request->scores_prompt() && sp.presence_penalty == 0.0f &&
           sp.frequency_penalty == 0.0f && sp.repetition_penalty == 1.0f && sp.top_logprobs == 0 &&
           sp.logit_bias.empty() && seq.sampler.has_value();
}

void Scheduler::sample(Sequence& seq, std::span<const float> logits) {
    Request& request = *seq.request;
    std::vector<Sequence*> choices = {&seq};
    if (request.params.n > 1 && !request.forked) {
        request.forked = true;
        for (int32_t c = 1; c < request.params.n; ++c) {
            auto child = std::make_unique<Sequence>();
            child->request = seq.request;
            child->choice = c;
            child->tokens = seq.tokens;
            child->n_prompt = seq.n_prompt;
            child->n_computed = seq.n_computed;
            child->blocks = seq.blocks;
            for (int32_t block : child->blocks) {
                blocks_.retain(block);  // shared until one of them writes (copy-on-write)
            }
            child->keys = seq.keys;
            SamplingParams params = request.params.sampling;
            params.seed += static_cast<uint64_t>(c);
            child->sampler.emplace(params);
            child->constraint = seq.constraint;  // a copy: each choice follows its own tokens
            if (tokenizer_ != nullptr) {
                child->decoder.emplace(*tokenizer_, request.params.skip_special_tokens);
                child->stop.emplace(request.params.stop_strings);
            }
            ++request.live;
            choices.push_back(child.get());
            running_.push_back(std::move(child));
        }
    }
    for (Sequence* choice : choices) {
        const std::span<const int32_t> prompt(choice->tokens.data(),
                                              static_cast<size_t>(choice->n_prompt));
        if (!choice->constraint) {
            accept(*choice, choice->sampler->sample(logits, prompt, choice->generated));
            continue;
        }
        if (!choice->mask_ready) {
            choice->mask.assign((logits.size() + 63) / 64, 0);
            choice->constraint->fill_next_token_mask(choice->mask);
        }
        choice->mask_ready = false;
        if (std::all_of(choice->mask.begin(), choice->mask.end(),
                        [](uint64_t word) { return word == 0; })) {
            // The grammar is complete and ended (or can go nowhere): the choice stops here.
            finish_sequence(*choice, FinishReason::kStopToken,
                            StreamEvent{choice->choice, {}, {}, {}});
            continue;
        }
        const SampledToken token =
            choice->sampler->sample(logits, prompt, choice->generated, choice->mask);
        // The token was drawn under the matcher's own mask, so a refusal is a matcher bug.
        const Status followed = choice->constraint->accept_token(token.id);
        SLUICE_CHECK(followed.ok(), "grammar matcher refused a token its mask allowed");
        accept(*choice, token);
    }
}

void Scheduler::accept(Sequence& seq, const SampledToken& token) {
    Request& request = *seq.request;
    seq.generated.push_back(token.id);
    ++request.usage.completion_tokens;
    ++counters_.generated_tokens;
    StreamEvent event{seq.choice, {}, {}, {}};
    const auto& stops = request.params.stop_tokens;
    if (std::find(stops.begin(), stops.end(), token.id) != stops.end()) {
        finish_sequence(seq, FinishReason::kStopToken, std::move(event));
        return;
    }
    event.tokens.push_back(token);
    seq.tokens.push_back(token.id);
    const bool last = static_cast<int32_t>(seq.generated.size()) >= request.params.max_tokens ||
                      static_cast<int64_t>(seq.tokens.size()) >= backend_.config().max_seq_len;
    if (options_.overlap_output && seq.decoder && !last) {
        // Released during the next forward pass (scheduler.h, output overlap).
        SLUICE_CHECK(!seq.unreleased, "a token sampled before the last one was released");
        seq.unreleased = token;
        unreleased_.push_back(&seq);
        return;
    }
    if (seq.decoder && seq.release_text(token.id, event)) {
        finish_sequence(seq, FinishReason::kStopText, std::move(event));
        return;
    }
    if (last) {
        finish_sequence(seq, FinishReason::kLength, std::move(event));
        return;
    }
    request.sink->on_event(std::move(event));
}

void Scheduler::release_output(Sequence& seq) {
    if (!seq.unreleased) {
        return;
    }
    StreamEvent event{seq.choice, {}, {std::move(*seq.unreleased)}, {}};
    seq.unreleased.reset();
    if (seq.release_text(event.tokens.back().id, event)) {
        seq.stop_found = true;
        seq.stop_event = std::move(event);
        return;
    }
    seq.request->sink->on_event(std::move(event));
}

void Scheduler::finish_stopped(const std::vector<Sequence*>& released) {
    for (Sequence* seq : released) {
        if (seq->stop_found && !seq->finished) {
            // Its position computed meanwhile (if any) is dropped with its blocks.
            finish_sequence(*seq, FinishReason::kStopText, std::move(seq->stop_event));
        }
    }
}

void Scheduler::finish_sequence(Sequence& seq, FinishReason reason, StreamEvent event) {
    // A token whose text is still unreleased goes first, in order; when it completes a stop
    // string, that is how the sequence ends.
    release_output(seq);
    std::erase(unreleased_, &seq);
    if (seq.stop_found && reason != FinishReason::kStopText) {
        reason = FinishReason::kStopText;
        event = std::move(seq.stop_event);
    }
    if (seq.decoder && reason != FinishReason::kStopText) {
        StopResult cut = seq.stop->push(seq.decoder->finish());
        event.text += cut.text;
        if (!cut.stopped) {
            event.text += seq.stop->finish();
        }
    }
    event.finish = reason;
    Request& request = *seq.request;
    request.sink->on_event(std::move(event));
    blocks_.release_all(seq.blocks);
    seq.finished = true;
    if (--request.live == 0) {
        std::shared_ptr<Request> keep = seq.request;
        requests_.erase(request.id);
        keep->sink->on_finish(Status::ok_status(), keep->usage, {});
    }
}

}  // namespace sluice::inference
