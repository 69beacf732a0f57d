#pragma once
// Scheduler: iteration-level continuous batching over a Backend (device-agnostic).
//
// Every step() builds one ForwardBatch from the sequences that can make progress and runs it:
//   1. requests past their deadline end with kDeadlineExceeded;
//   2. running sequences in order (priority high to low, then arrival): first every decode (one
//      token each), then prompt chunks, while the step's token budget (max_batch_tokens) lasts.
//      A long prompt is thus prefilled in chunks between decode steps of the others, and no
//      running sequence waits more than one step for its next token;
//   3. waiting sequences are admitted in the same order while the budget, max_running and the
//      KV cache allow. Admission first looks the prompt up in the prefix cache
//      (block_manager.h): leading full blocks computed before are shared, not computed.
// Each sequence owns a block table; blocks are allocated for exactly the positions a step
// writes. When blocks run out, the lowest-priority, latest-arriving running sequence is
// preempted: its blocks are released and it goes back to the waiting queue holding its tokens,
// to be recomputed (prefix hits make that cheap) when admitted again. A waiting request of higher
// priority may preempt running ones of lower priority.
//
// A request asks for n choices: one sequence prefills the prompt; at its first sample it forks
// into n sequences sharing every block (copy-on-write: a sequence about to write a shared block
// copies it first with Backend::copy_kv_block). Each choice samples with seed + choice index.
//
// Embedding requests prefill only, with the backend returning final hidden states, which are
// mean-pooled over the prompt and L2-normalised. They never take blocks from the prefix cache
// (every position's hidden state is needed).
//
// Prompt scoring (EngineRequest::prompt_logprobs): the chunks of a scored prompt return a row
// of logits per token (at most 128 rows a step), each scoring the prompt token after it, on the
// scheduler's thread and its helper; scores survive preemption (only unscored positions are
// computed again) and go to the sink once the prompt is computed, before the first event.
//
// Constraints: a request with a grammar (EngineRequest::constraint) gives each choice its own
// matcher, which masks every sample of that choice and follows its tokens (preemption keeps it).
//
// Stops: a stop token ends a choice (it is counted in usage but not reported); text stop strings
// are matched on the decoded text (stream_decoder.h), so events carry text already cut before a
// stop string; max_tokens and the model's max_seq_len end it with kLength.
//
// Output overlap (SchedulerOptions::overlap_output, on by default). Releasing a token's text —
// detokenising it, matching stop strings, handing the event to the request's sink — needs only
// the token, not the next step, so a step releases the text of the tokens the previous step
// sampled on a helper thread while its own forward pass runs, and the host's share of a step
// shrinks to planning and sampling. What a request sees is unchanged (the same events with the
// same text in the same order, the same usage): a token that completes a stop string is found a
// step later, so its sequence computes one more position, which is thrown away (not sampled, not
// counted). A sequence's last token (max_tokens, the context's end, a stop token) is released at
// once, with its finish, so that a request never waits a step for its end.
//
// Results go to the request's RequestSink on the scheduler's thread, or its helper thread during
// a forward pass; never on both at once. cancel() ends a request at once: its blocks are released
// before cancel() returns.
//
// Thread safety: owned by one thread, which must also own the backend.

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/result.h"
#include "inference/backend.h"
#include "inference/block_manager.h"
#include "inference/generator.h"
#include "inference/grammar_matcher.h"
#include "inference/sampling.h"
#include "inference/tokenizer.h"

namespace sluice::inference {

namespace detail {
class StepHelper;
}  // namespace detail

using SteadyClock = std::chrono::steady_clock;

// What a caller asks the engine for.
struct EngineRequest {
    std::vector<int32_t> prompt;
    SamplingParams sampling;
    // Per choice. 0 only when the prompt is scored (prompt_logprobs >= 0): the request then
    // ends after its prompt (every choice with kLength), sampling nothing.
    int32_t max_tokens = 16;
    int32_t n = 1;            // choices
    std::vector<int32_t> stop_tokens;
    std::vector<std::string> stop_strings;  // need a tokenizer
    int32_t priority = 0;                   // higher is admitted first and preempted last
    double timeout_s = 0;                   // 0: no deadline
    bool embed = false;                     // prefill only; the result is an embedding
    // Special tokens sampled (other than the stop tokens, which are left out anyway) add no
    // text: they are control, not content (vLLM's default). Their ids stay in the tokens.
    bool skip_special_tokens = true;
    // Scoring the prompt (legacy completions' echo with logprobs): -1 off; k in [0, 20] gives
    // every prompt token after the first its logprob given the tokens before it, with the k most
    // likely alternatives, through RequestSink::on_prompt_logprobs. Such a request takes no
    // blocks from the prefix cache for positions it has not scored (their logits are needed).
    int32_t prompt_logprobs = -1;
    // Structured output: each choice gets its own copy of this matcher (in its start state, or
    // past a forced prefix) and samples only tokens it allows; every sampled token is fed to it.
    // End-of-turn tokens are then possible only where the grammar is complete, and a choice
    // whose grammar allows no token ends with kStopToken. The masks are computed on a helper
    // thread while the step's forward pass runs (each matcher is touched by one thread at a
    // time: the helper during the pass, the scheduler's thread after it).
    std::optional<GrammarMatcher> constraint;
};

// New output of one choice.
struct StreamEvent {
    int32_t choice = 0;
    std::string text;                  // text released by this event (stop strings cut)
    std::vector<SampledToken> tokens;  // tokens sampled for this event (stop tokens left out)
    std::optional<FinishReason> finish;
};

// Receives a request's results, on the scheduler's thread.
class RequestSink {
public:
    virtual ~RequestSink() = default;
    virtual void on_event(StreamEvent event) = 0;
    // A request with EngineRequest::prompt_logprobs >= 0: once, before its first event, the
    // scores of prompt tokens 1 .. n_prompt - 1 in order (the first token has none).
    virtual void on_prompt_logprobs(std::vector<SampledToken> scores) { (void)scores; }
    // Last call for a request. `embedding` is set for embedding requests that succeeded.
    virtual void on_finish(const Status& status, const Usage& usage,
                           std::vector<float> embedding) = 0;
};

struct SchedulerOptions {
    int32_t max_batch_tokens = 512;  // tokens in one forward step
    int32_t max_running = 64;        // sequences in the running set
    bool prefix_caching = true;
    // Release each step's text on a helper thread during the next forward pass (above); off: on
    // the scheduler's thread right after the step.
    bool overlap_output = true;
    // Threads making one step's host-side choices: 1, or 2 (the scheduler's and its helper);
    // 0 picks 2 where the machine has 2 or more hardware threads (docs/benchmarks.md).
    int32_t host_sampling_threads = 0;
};

struct SchedulerStats {
    int32_t running = 0;          // sequences
    int32_t waiting = 0;          // sequences waiting for admission
    int32_t waiting_requests = 0;
    BlockStats blocks;
    int64_t steps = 0;
    int64_t preemptions = 0;
    int64_t prompt_tokens = 0;         // prompt positions computed (prefix hits excluded)
    int64_t cached_prompt_tokens = 0;  // prompt positions taken from the prefix cache
    int64_t generated_tokens = 0;
    // Where the forward time goes (the serving bench reads these per phase): steps that only
    // decode, and steps that also compute prompt chunks, with their time in Backend::forward
    // (seconds, steady clock) and the decode rows (sequences taking one new token) they carried.
    int64_t decode_only_steps = 0;
    int64_t mixed_steps = 0;
    int64_t decode_rows = 0;
    double decode_only_seconds = 0;
    double mixed_seconds = 0;
    double longest_step_seconds = 0;
    // Time of steps outside Backend::forward (planning, sampling, releasing output on the
    // scheduler's thread): what the device waits for between passes.
    double host_seconds = 0;
    // Tokens whose text was released on the helper thread while a forward pass ran.
    int64_t overlapped_outputs = 0;
};

class Scheduler {
public:
    // The backend's KV cache must be configured; `tokenizer` (may be null: no text, no stop
    // strings) must outlive the scheduler.
    Scheduler(Backend& backend, const Tokenizer* tokenizer, SchedulerOptions options);
    ~Scheduler();
    Scheduler(const Scheduler&) = delete;
    Scheduler& operator=(const Scheduler&) = delete;

    // kInvalidArgument naming the problem: an empty prompt, ids outside the vocabulary, a prompt
    // that leaves no room under max_seq_len or cannot fit the whole KV cache, bad sampling,
    // max_tokens < 1, n outside [1, 128], stop strings without a tokenizer, a constraint over a
    // vocabulary larger than the model's.
    Status validate(const EngineRequest& request) const;

    // Queues a validated request. `id` must be unique among live requests.
    void add(uint64_t id, EngineRequest request, std::shared_ptr<RequestSink> sink);
    // Ends a live request with kCancelled and frees its blocks; unknown ids are ignored.
    void cancel(uint64_t id);
    // Ends every live request with `status` (shutdown).
    void fail_all(const Status& status);

    // One iteration. Returns false when nothing could run (idle, or every waiting request is
    // blocked). A backend error fails the requests of that batch and is returned.
    Result<bool> step();

    bool idle() const;
    SchedulerStats stats() const;

private:
    struct Request;
    struct Sequence;
    struct Planned;

    void expire_deadlines(SteadyClock::time_point now);
    void count_step(const std::vector<Planned>& plan, double seconds);
    // The positions seq computes this step, out of `budget` left.
    int32_t chunk_size(const Sequence& seq, int32_t budget) const;
    bool plan_running(std::vector<Planned>& plan, int32_t& budget);
    void admit_waiting(std::vector<Planned>& plan, int32_t& budget);
    bool reserve(Sequence& seq, int32_t n_new, const std::vector<Planned>& plan,
                 int32_t priority_floor);
    Sequence* pick_victim(const Sequence& for_seq, const std::vector<Planned>& plan,
                          int32_t priority_floor);
    void preempt(Sequence& seq);
    void after_forward(std::vector<Planned>& plan, const ForwardOutput& out);
    // The host's choices for the plan's plain sequences (sampling on the host, no fork to make,
    // no grammar), made on this thread and, with host_sampling_threads 2, the helper at once;
    // empty for the others.
    std::vector<std::optional<SampledToken>> choose_plain(const std::vector<Planned>& plan,
                                                          const ForwardOutput& out);
    // Ends the requests of the step's plan with `why` (the backend failed) and returns it.
    Status fail_step(const std::vector<Planned>& plan, const Status& why);
    // Scores the prompt tokens that the rows of the step's scored chunks predict.
    void score_prompts(const std::vector<Planned>& plan, const ForwardOutput& out);
    // Ends a request of max_tokens 0 once its prompt is computed.
    void finish_unsampled(Sequence& seq);
    void finish_embedding(Sequence& seq);
    void publish_full_blocks(Sequence& seq);
    // Whether seq's next token may be chosen by the backend (backend.h, device sampling).
    bool samples_on_device(const Sequence& seq) const;
    void sample(Sequence& seq, std::span<const float> logits);
    void fork(Sequence& parent);
    void accept(Sequence& seq, const SampledToken& token);
    void finish_sequence(Sequence& seq, FinishReason reason, StreamEvent event);
    // Output overlap: the text of seq's unreleased token to its sink, or, when it completes a
    // stop string, kept for finish_stopped. Runs on the helper thread during a forward pass.
    void release_output(Sequence& seq);
    // Ends the sequences whose released text completed a stop string.
    void finish_stopped(const std::vector<Sequence*>& released);
    // Releases every unreleased token now, on this thread; false when there was none.
    bool release_now();
    void finish_request(Request& request, const Status& status);
    void drop_sequences_of(const Request& request);
    void insert_waiting(std::unique_ptr<Sequence> seq);
    void sort_running();

    Backend& backend_;
    const Tokenizer* tokenizer_;
    SchedulerOptions options_;
    BlockManager blocks_;
    std::unordered_map<uint64_t, std::shared_ptr<Request>> requests_;
    std::vector<std::unique_ptr<Sequence>> running_;  // priority desc, arrival asc
    std::vector<std::unique_ptr<Sequence>> waiting_;  // same order
    uint64_t next_arrival_ = 0;
    SchedulerStats counters_;
    // A copy-on-write block copy the backend failed while the step was planned; the step
    // fails with it.
    Status copy_failure_;
    // Sequences holding a token whose text the next step releases (output overlap), in order.
    std::vector<Sequence*> unreleased_;
    std::unique_ptr<detail::StepHelper> helper_;  // last: idle whenever step() is not running
};

}  // namespace sluice::inference
