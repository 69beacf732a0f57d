#pragma once
// Governance of one call of the served model through the OpenAI-compatible API (docs/api.md,
// "Governance"): who may query the endpoint, what personal data may go in and come out, what
// the call may spend and what it did spend, and where its answer came from.
//
// A call goes:
//   ModelCall call(gov, context, endpoint, securable);
//   call.authorize()                       EXECUTE on the catalog model, audited (allow and deny)
//   call.guard_input(text) per input       the endpoint's input policy (400 when it blocks)
//   call.reserve(estimated tokens)         limits and budgets (429 naming the limit)
//   ... generation, output through guard_output() or an OutputGuard from stream_guard() ...
//   call.finish(usage, status)             settles the reservation with the real tokens (the
//                                          usage row and its audit record) and records lineage
// A call dropped after reserve() without finish() settles as "cancelled" with no tokens, so
// that a reservation never outlives its request.
//
// Thread safety: owned by one thread at a time.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/result.h"
#include "governance/governance.h"
#include "inference/engine.h"

namespace sluice::app {

class ModelCall {
public:
    // `securable`: the catalog model governing the endpoint, or "" for none (no privilege to
    // check, no lineage node). Governance must outlive the call.
    ModelCall(governance::Governance& gov, governance::RequestContext context,
              std::string endpoint, std::string securable);
    ~ModelCall();
    ModelCall(const ModelCall&) = delete;
    ModelCall& operator=(const ModelCall&) = delete;

    // kPermissionDenied (or kNotFound for a securable that does not exist) when the caller
    // lacks EXECUTE on the securable; ok when there is none.
    Status authorize();
    // The text to send to the model (masked, or as given). kInvalidArgument when the endpoint's
    // input policy blocks personal data.
    Result<std::string> guard_input(std::string_view text);
    // Charges the estimate to every applicable limit. kResourceExhausted naming the limit;
    // then `retry_after_s` holds the hint (nullopt: the estimate never fits).
    Status reserve(std::int64_t estimated_tokens, std::optional<std::int64_t>* retry_after_s);
    // The whole answer under the endpoint's output policy. kPermissionDenied when it blocks.
    Result<std::string> guard_output(std::string_view text);
    // A guard for one streamed answer.
    Result<governance::OutputGuard> stream_guard();
    // kInvalidArgument when the endpoint has an output policy: token logprobs carry each
    // token's text, which would show what the guardrail masks or blocks.
    Status allow_token_logprobs();
    // Settles the reservation with the tokens used and records lineage (model → answer).
    // `status`: "ok", "error" or "cancelled". kUnavailable when the usage row could not be
    // written (the answer must not be given as billed). Later calls are no-ops.
    Status finish(const inference::Usage& usage, std::string status);

    // Gives the reservation back without a usage row: nothing reached the model (its input was
    // refused). Later calls of finish() are no-ops.
    void release();

    // Labels the usage row finish() writes (governance::UsageReport::agent): who used the model
    // on the caller's behalf, e.g. "qa" or "eval.judges"; "" for a direct call.
    void set_agent(std::string agent) { agent_ = std::move(agent); }

    // Whether finish() has run (or there was nothing to settle).
    bool finished() const { return finished_ || !reservation_; }
    const governance::RequestContext& context() const { return context_; }
    const std::string& endpoint() const { return endpoint_; }

private:
    governance::Governance& gov_;
    governance::RequestContext context_;
    std::string endpoint_;
    std::string securable_;
    std::optional<governance::Reservation> reservation_;
    std::string agent_;
    std::int64_t started_us_ = 0;
    bool finished_ = false;
};

// A use of the served model on a caller's behalf by the server itself (document QA, judges,
// best-of-N), governed like a call of the OpenAI routes: EXECUTE on `securable` (audited),
// then `estimated_tokens` reserved under the caller's limits. Finish the call with the tokens
// used; its usage row carries `agent`. Errors: those of authorize() and reserve() (then
// `retry_after_s`, when given, holds the hint).
Result<std::unique_ptr<ModelCall>> open_governed_use(
    governance::Governance& gov, const governance::RequestContext& context,
    const std::string& endpoint, const std::string& securable, std::int64_t estimated_tokens,
    std::string agent, std::optional<std::int64_t>* retry_after_s);

}  // namespace sluice::app
