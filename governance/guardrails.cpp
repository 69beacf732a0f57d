#include "governance/guardrails.h"

#include "common/log.h"

namespace sluice::governance {
namespace {

bool any(const PiiCounts& counts) {
    for (int count : counts) {
        if (count > 0) {
            return true;
        }
    }
    return false;
}

}  // namespace

int GuardrailOutcome::total_hits() const {
    int total = 0;
    for (int count : hits) {
        total += count;
    }
    return total;
}

std::string describe_pii_counts(const PiiCounts& counts) {
    std::string out;
    for (int i = 0; i < kPiiTypeCount; ++i) {
        int count = counts[static_cast<std::size_t>(i)];
        if (count > 0) {
            out += (out.empty() ? "" : ", ") + std::to_string(count) + " " +
                   std::string(pii_type_name(static_cast<PiiType>(i)));
        }
    }
    return out;
}

Status Guardrails::audit_hits(const RequestContext& context, const std::string& endpoint,
                              bool input, PiiAction action, const PiiCounts& counts) {
    AuditEvent event = audit_event_for(context);
    event.action = input ? "guardrail.input" : "guardrail.output";
    event.securable = "endpoint:" + endpoint;
    event.result = std::string(pii_action_name(action));
    event.decided_by = "personal data policy of endpoint '" + endpoint + "'";
    event.details = pii_counts_json(counts);
    Status written = audit_.append(std::move(event));
    if (!written.ok()) {
        return unavailable("guardrail decision could not be audited: " + written.message());
    }
    return Status();
}

Result<GuardrailOutcome> Guardrails::check(const RequestContext& context,
                                           const std::string& endpoint, std::string_view text,
                                           bool input) {
    SLUICE_ASSIGN_OR_RETURN(EndpointSettings settings, endpoints_.get(endpoint));
    PiiAction action = input ? settings.guardrails.input : settings.guardrails.output;
    GuardrailOutcome outcome;
    if (action == PiiAction::kNone) {
        outcome.text = std::string(text);
        return outcome;
    }
    std::vector<PiiMatch> matches = find_pii(text, settings.guardrails.types);
    outcome.hits = count_pii(matches);
    if (matches.empty()) {
        outcome.text = std::string(text);
        return outcome;
    }
    SLUICE_RETURN_IF_ERROR(audit_hits(context, endpoint, input, action, outcome.hits));
    if (action == PiiAction::kBlock) {
        std::string found = describe_pii_counts(outcome.hits);
        if (input) {
            return invalid_argument("the input contains personal data (" + found +
                                    ") and endpoint '" + endpoint + "' blocks it");
        }
        return Status(StatusCode::kPermissionDenied,
                      "the answer contains personal data (" + found + ") and endpoint '" +
                          endpoint + "' blocks it; the answer is withheld");
    }
    outcome.text = mask_pii(text, matches);
    outcome.masked = true;
    return outcome;
}

Result<GuardrailOutcome> Guardrails::check_input(const RequestContext& context,
                                                 const std::string& endpoint,
                                                 std::string_view text) {
    return check(context, endpoint, text, true);
}

Result<GuardrailOutcome> Guardrails::check_output(const RequestContext& context,
                                                  const std::string& endpoint,
                                                  std::string_view text) {
    return check(context, endpoint, text, false);
}

Result<OutputGuard> Guardrails::guard_output(const RequestContext& context,
                                             const std::string& endpoint) {
    SLUICE_ASSIGN_OR_RETURN(EndpointSettings settings, endpoints_.get(endpoint));
    return OutputGuard(*this, context, endpoint, settings.guardrails.output,
                       settings.guardrails.types);
}

OutputGuard::OutputGuard(Guardrails& owner, RequestContext context, std::string endpoint,
                         PiiAction action, PiiTypeSet types)
    : owner_(&owner), context_(std::move(context)), endpoint_(std::move(endpoint)),
      action_(action), masker_(types) {}

OutputGuard::OutputGuard(OutputGuard&& other) noexcept
    : owner_(other.owner_), context_(std::move(other.context_)),
      endpoint_(std::move(other.endpoint_)), action_(other.action_),
      masker_(std::move(other.masker_)), closed_(other.closed_) {
    other.closed_ = true;
}

OutputGuard::~OutputGuard() {
    if (!closed_) {
        Status audited = close(false);
        if (!audited.ok()) {
            log::error("guardrails", "cannot audit an abandoned output stream",
                       {{"request_id", context_.request_id}, {"error", audited.message()}});
        }
    }
}

Status OutputGuard::close(bool blocked) {
    closed_ = true;
    if (action_ == PiiAction::kNone || (!any(masker_.counts()) && !blocked)) {
        return Status();
    }
    return owner_->audit_hits(context_, endpoint_, false, action_, masker_.counts());
}

Result<std::string> OutputGuard::push(std::string_view chunk) {
    if (closed_) {
        return failed_precondition("output guard is finished");
    }
    if (action_ == PiiAction::kNone) {
        return std::string(chunk);
    }
    if (action_ == PiiAction::kBlock) {
        std::string ready = masker_.push(chunk);
        if (any(masker_.counts()) || masker_.pending_match()) {
            (void)masker_.finish();  // count what the tail holds too
            SLUICE_RETURN_IF_ERROR(close(true));
            return Status(StatusCode::kPermissionDenied,
                          "the answer contains personal data (" +
                              describe_pii_counts(masker_.counts()) + ") and endpoint '" +
                              endpoint_ + "' blocks it; the rest of the answer is withheld");
        }
        return ready;
    }
    return masker_.push(chunk);
}

Result<std::string> OutputGuard::finish() {
    if (closed_) {
        return failed_precondition("output guard is finished");
    }
    if (action_ == PiiAction::kNone) {
        closed_ = true;
        return std::string();
    }
    std::string rest = masker_.finish();
    bool found = any(masker_.counts());
    SLUICE_RETURN_IF_ERROR(close(action_ == PiiAction::kBlock && found));
    if (action_ == PiiAction::kBlock && found) {
        return Status(StatusCode::kPermissionDenied,
                      "the answer contains personal data (" +
                          describe_pii_counts(masker_.counts()) + ") and endpoint '" + endpoint_ +
                          "' blocks it; the rest of the answer is withheld");
    }
    return rest;
}

}  // namespace sluice::governance
