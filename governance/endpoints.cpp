#include "governance/endpoints.h"

#include <cmath>
#include <nlohmann/json.hpp>

#include "governance/detail/sqlite.h"
#include "governance/store.h"

namespace sluice::governance {
namespace {

Result<std::map<std::string, EndpointSettings>> load_all(detail::Database& db) {
    SLUICE_ASSIGN_OR_RETURN(
        auto select,
        db.prepare("SELECT name, input_per_million, output_per_million, cached_input_per_million, "
                   "input_pii, output_pii, pii_types, updated_by, updated_at_ms FROM endpoints"));
    std::map<std::string, EndpointSettings> out;
    while (true) {
        SLUICE_ASSIGN_OR_RETURN(bool row, select.step());
        if (!row) {
            break;
        }
        EndpointSettings s;
        s.name = select.column_text(0);
        s.prices.input_per_million = select.column_double(1);
        s.prices.output_per_million = select.column_double(2);
        s.prices.cached_input_per_million = select.column_double(3);
        SLUICE_ASSIGN_OR_RETURN(s.guardrails.input, parse_pii_action(select.column_text(4)));
        SLUICE_ASSIGN_OR_RETURN(s.guardrails.output, parse_pii_action(select.column_text(5)));
        SLUICE_ASSIGN_OR_RETURN(s.guardrails.types, parse_pii_types(select.column_text(6)));
        s.updated_by = select.column_text(7);
        s.updated_at_ms = select.column_int(8);
        s.configured = true;
        out[s.name] = s;
    }
    return out;
}

// Far above any model's price per million tokens, and low enough that the cost of any number
// of tokens a usage report can sum stays finite.
constexpr double kMaxPricePerMillion = 1e9;

Status validate_price(double value, std::string_view what) {
    if (!std::isfinite(value) || value < 0 || value > kMaxPricePerMillion) {
        return invalid_argument(std::string(what) +
                                " must be a price per million tokens from 0 to at most "
                                "1000000000, found " +
                                nlohmann::json(value).dump());
    }
    return Status();
}

}  // namespace

std::string_view pii_action_name(PiiAction action) {
    switch (action) {
        case PiiAction::kNone: return "none";
        case PiiAction::kMask: return "mask";
        case PiiAction::kBlock: return "block";
    }
    return "none";
}

Result<PiiAction> parse_pii_action(std::string_view text) {
    for (PiiAction action : {PiiAction::kNone, PiiAction::kMask, PiiAction::kBlock}) {
        std::string_view name = pii_action_name(action);
        if (text.size() == name.size()) {
            bool same = true;
            for (std::size_t i = 0; i < text.size(); ++i) {
                same = same && (text[i] == name[i] || text[i] == name[i] - 'a' + 'A');
            }
            if (same) {
                return action;
            }
        }
    }
    return invalid_argument("guardrail behaviour must be none, mask or block, found '" +
                            std::string(text) + "'");
}

Status validate_endpoint_name(std::string_view name) {
    if (name.empty() || name.size() > 255) {
        return invalid_argument("endpoint name must have 1-255 characters, found " +
                                std::to_string(name.size()));
    }
    for (char c : name) {
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '-' || c == '.';
        if (!ok) {
            return invalid_argument("endpoint name '" + std::string(name) +
                                    "' has a character other than letters, digits, '_', '-' "
                                    "and '.'");
        }
    }
    return Status();
}

Endpoints::Endpoints(std::unique_ptr<detail::Database> db,
                     std::map<std::string, EndpointSettings> cache)
    : db_(std::move(db)), cache_(std::move(cache)) {}

Endpoints::~Endpoints() = default;

Result<std::unique_ptr<Endpoints>> Endpoints::open(const std::filesystem::path& db_path) {
    SLUICE_ASSIGN_OR_RETURN(auto db, detail::Database::open(db_path.string()));
    SLUICE_ASSIGN_OR_RETURN(auto cache, load_all(*db));
    return std::make_unique<Endpoints>(std::move(db), std::move(cache));
}

Result<EndpointSettings> Endpoints::get(const std::string& name) {
    SLUICE_RETURN_IF_ERROR(validate_endpoint_name(name));
    std::lock_guard lock(mutex_);
    auto it = cache_.find(name);
    if (it != cache_.end()) {
        return it->second;
    }
    EndpointSettings defaults;
    defaults.name = name;
    return defaults;
}

Result<EndpointSettings> Endpoints::put(const EndpointSettings& settings,
                                        const std::string& updated_by) {
    SLUICE_RETURN_IF_ERROR(validate_endpoint_name(settings.name));
    SLUICE_RETURN_IF_ERROR(validate_price(settings.prices.input_per_million, "input price"));
    SLUICE_RETURN_IF_ERROR(validate_price(settings.prices.output_per_million, "output price"));
    SLUICE_RETURN_IF_ERROR(
        validate_price(settings.prices.cached_input_per_million, "cached input price"));
    EndpointSettings stored = settings;
    stored.configured = true;
    stored.updated_by = updated_by;
    stored.updated_at_ms = now_ms();
    std::lock_guard lock(mutex_);
    SLUICE_ASSIGN_OR_RETURN(
        auto upsert,
        db_->prepare("INSERT INTO endpoints (name, input_per_million, output_per_million, "
                     "cached_input_per_million, input_pii, output_pii, pii_types, updated_by, "
                     "updated_at_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO "
                     "UPDATE SET input_per_million = excluded.input_per_million, "
                     "output_per_million = excluded.output_per_million, "
                     "cached_input_per_million = excluded.cached_input_per_million, input_pii = "
                     "excluded.input_pii, output_pii = excluded.output_pii, pii_types = "
                     "excluded.pii_types, updated_by = excluded.updated_by, updated_at_ms = "
                     "excluded.updated_at_ms"));
    SLUICE_RETURN_IF_ERROR(upsert.bind(1, stored.name)
                               .bind(2, stored.prices.input_per_million)
                               .bind(3, stored.prices.output_per_million)
                               .bind(4, stored.prices.cached_input_per_million)
                               .bind(5, pii_action_name(stored.guardrails.input))
                               .bind(6, pii_action_name(stored.guardrails.output))
                               .bind(7, pii_types_to_string(stored.guardrails.types))
                               .bind(8, stored.updated_by)
                               .bind(9, stored.updated_at_ms)
                               .run());
    cache_[stored.name] = stored;
    return stored;
}

Status Endpoints::remove(const std::string& name) {
    std::lock_guard lock(mutex_);
    SLUICE_ASSIGN_OR_RETURN(auto erase, db_->prepare("DELETE FROM endpoints WHERE name = ?"));
    SLUICE_RETURN_IF_ERROR(erase.bind(1, name).run());
    if (db_->changes() == 0) {
        return not_found("endpoint '" + name + "' has no settings");
    }
    cache_.erase(name);
    return Status();
}

Result<std::vector<EndpointSettings>> Endpoints::list() {
    std::lock_guard lock(mutex_);
    std::vector<EndpointSettings> out;
    for (const auto& [name, settings] : cache_) {
        out.push_back(settings);
    }
    return out;
}

}  // namespace sluice::governance
