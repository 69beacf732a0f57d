#pragma once
// Endpoints: the settings of model endpoints that governance applies — prices per million
// tokens (for the estimated cost of usage) and the guardrail policy for personal data in input
// and output. Stored in catalog.db (`endpoints`), cached in memory.
//
// An endpoint is named as clients name it (the OpenAI `model` field: "dbrx", "dbrx-instruct",
// or a catalog model's full name "main.models.dbrx"): 1-255 characters of letters, digits, '_',
// '-' and '.'. An endpoint without settings costs nothing and has no guardrails.
//
// Thread safety: thread-safe.

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/result.h"
#include "governance/pii.h"

namespace sluice::governance {

namespace detail {
class Database;
}

// What a guardrail does with personal data it finds.
enum class PiiAction : std::uint8_t {
    kNone,   // pass it through (the default)
    kMask,   // replace each match by its label ("[EMAIL]") and go on
    kBlock,  // refuse the request (input) or withhold the answer (output)
};
std::string_view pii_action_name(PiiAction action);  // "none", "mask", "block"
Result<PiiAction> parse_pii_action(std::string_view text);  // also "NONE", "MASK", "BLOCK"

struct GuardrailPolicy {
    PiiAction input = PiiAction::kNone;
    PiiAction output = PiiAction::kNone;
    PiiTypeSet types = kAllPiiTypes;  // which detectors apply
};

struct EndpointPrices {
    double input_per_million = 0;         // USD per 1,000,000 prompt tokens not from the cache
    double output_per_million = 0;        // USD per 1,000,000 completion tokens
    double cached_input_per_million = 0;  // USD per 1,000,000 prompt tokens from the cache
};

struct EndpointSettings {
    std::string name;
    EndpointPrices prices;
    GuardrailPolicy guardrails;
    bool configured = false;  // false: defaults, nothing stored
    std::string updated_by;
    std::int64_t updated_at_ms = 0;
};

// kInvalidArgument naming the offending character.
Status validate_endpoint_name(std::string_view name);

class Endpoints {
public:
    static Result<std::unique_ptr<Endpoints>> open(const std::filesystem::path& db_path);
    ~Endpoints();

    // The endpoint's settings, or the defaults when none are stored.
    Result<EndpointSettings> get(const std::string& name);
    // Stores the settings (replacing any); prices must be finite and not negative.
    Result<EndpointSettings> put(const EndpointSettings& settings, const std::string& updated_by);
    // kNotFound when nothing is stored for it.
    Status remove(const std::string& name);
    Result<std::vector<EndpointSettings>> list();

    Endpoints(std::unique_ptr<detail::Database> db, std::map<std::string, EndpointSettings> cache);

private:
    std::mutex mutex_;
    std::unique_ptr<detail::Database> db_;             // guarded by mutex_
    std::map<std::string, EndpointSettings> cache_;    // guarded by mutex_
};

}  // namespace sluice::governance
