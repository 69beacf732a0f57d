#pragma once
// Guardrails: applies a model endpoint's personal-data policy (endpoints.h) to the text going
// into the model and the text coming out of it. Detection is pii.h's.
//
// Policy per direction: none (pass through), mask (replace each match by its label and go on)
// or block. A blocked input is kInvalidArgument (HTTP 400: the request carries personal data
// the endpoint refuses); a blocked output is kPermissionDenied (403: the answer is withheld).
// Messages name the types and counts, never the text.
//
// Every check that finds something is audited: action "guardrail.input" or "guardrail.output",
// securable "endpoint:<name>", result "mask" or "block", details the counts per type
// ({"email":1}) — never the personal data itself. A check that finds nothing writes nothing.
//
// Thread safety: Guardrails is thread-safe; an OutputGuard is owned by one thread.

#include <memory>
#include <string>
#include <string_view>

#include "common/result.h"
#include "governance/audit_sink.h"
#include "governance/endpoints.h"
#include "governance/pii.h"
#include "governance/request_context.h"

namespace sluice::governance {

struct GuardrailOutcome {
    std::string text;      // the text to use: masked when the policy masks, else unchanged
    PiiCounts hits{};      // matches per type (indexed by PiiType)
    bool masked = false;   // text differs from the input
    int total_hits() const;
};

class Guardrails;

// Checks a streamed answer chunk by chunk (PiiStreamMasker): push() returns what may be sent
// now, finish() the rest. With a blocking policy, the first match fails push() or finish()
// with kPermissionDenied before any of it is returned. The audit record is written when the
// stream finishes or is blocked (or, if neither happens, when the guard is destroyed).
class OutputGuard {
public:
    OutputGuard(OutputGuard&&) noexcept;
    OutputGuard& operator=(OutputGuard&&) = delete;
    OutputGuard(const OutputGuard&) = delete;
    ~OutputGuard();

    Result<std::string> push(std::string_view chunk);
    Result<std::string> finish();
    const PiiCounts& hits() const { return masker_.counts(); }

private:
    friend class Guardrails;
    OutputGuard(Guardrails& owner, RequestContext context, std::string endpoint, PiiAction action,
                PiiTypeSet types);
    Status close(bool blocked);

    Guardrails* owner_;
    RequestContext context_;
    std::string endpoint_;
    PiiAction action_;
    PiiStreamMasker masker_;
    bool closed_ = false;
};

class Guardrails {
public:
    Guardrails(Endpoints& endpoints, AuditSink& audit) : endpoints_(endpoints), audit_(audit) {}

    // Applies the endpoint's input policy. kInvalidArgument when it blocks and finds personal
    // data; kUnavailable when the audit record cannot be written (nothing passes unaudited).
    Result<GuardrailOutcome> check_input(const RequestContext& context,
                                         const std::string& endpoint, std::string_view text);
    // Applies the endpoint's output policy to a whole answer. kPermissionDenied when it blocks.
    Result<GuardrailOutcome> check_output(const RequestContext& context,
                                          const std::string& endpoint, std::string_view text);
    // A guard for a streamed answer under the endpoint's output policy.
    Result<OutputGuard> guard_output(const RequestContext& context, const std::string& endpoint);

private:
    friend class OutputGuard;
    Result<GuardrailOutcome> check(const RequestContext& context, const std::string& endpoint,
                                   std::string_view text, bool input);
    Status audit_hits(const RequestContext& context, const std::string& endpoint, bool input,
                      PiiAction action, const PiiCounts& counts);

    Endpoints& endpoints_;
    AuditSink& audit_;
};

// "2 credit_card, 1 email": counts for messages.
std::string describe_pii_counts(const PiiCounts& counts);

}  // namespace sluice::governance
