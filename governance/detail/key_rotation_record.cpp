#include "governance/detail/key_rotation_record.h"

#include <nlohmann/json.hpp>

#include "governance/detail/crypto.h"

namespace sluice::governance::detail {

std::string key_rotation_details_json(const KeyRotationDetails& details) {
    // nlohmann's object keeps its keys sorted and dumps without spaces: one spelling per value.
    return nlohmann::json{{"handover_signature", to_hex(details.handover_signature)},
                          {"previous_key", details.previous_key_held ? "held" : "lost"},
                          {"previous_public_key", to_hex(details.previous_public_key)},
                          {"public_key", to_hex(details.public_key)}}
        .dump();
}

std::optional<KeyRotationDetails> parse_key_rotation_details(std::string_view json) {
    nlohmann::json parsed = nlohmann::json::parse(json, nullptr, /*allow_exceptions=*/false);
    if (!parsed.is_object() || parsed.size() != 4) {
        return std::nullopt;
    }
    auto text = [&](const char* key) -> std::optional<std::string> {
        auto member = parsed.find(key);
        if (member == parsed.end() || !member->is_string()) {
            return std::nullopt;
        }
        return member->get<std::string>();
    };
    auto bytes = [&](const char* key) -> std::optional<std::string> {
        std::optional<std::string> hex = text(key);
        if (!hex) {
            return std::nullopt;
        }
        auto raw = from_hex(*hex);
        return raw.ok() ? std::optional<std::string>(std::move(*raw)) : std::nullopt;
    };
    std::optional<std::string> held = text("previous_key");
    std::optional<std::string> previous = bytes("previous_public_key");
    std::optional<std::string> next = bytes("public_key");
    std::optional<std::string> handover = bytes("handover_signature");
    if (!held || (*held != "held" && *held != "lost") || !previous || !next || !handover ||
        next->size() != 32 || (!previous->empty() && previous->size() != 32)) {
        return std::nullopt;
    }
    KeyRotationDetails details{*held == "held", std::move(*previous), std::move(*next),
                               std::move(*handover)};
    if (key_rotation_details_json(details) != json) {
        return std::nullopt;
    }
    return details;
}

std::string key_handover_message(std::string_view previous_public_key,
                                 std::string_view public_key) {
    return "sluice-audit-key-handover-v1\n" + to_hex(previous_public_key) + "\n" +
           to_hex(public_key);
}

}  // namespace sluice::governance::detail
