#pragma once
// What a signing key rotation writes into the audit log (the `details` of its record) and what
// the previous key signs to hand over to the next: shared by the rotation and by verify.

#include <optional>
#include <string>
#include <string_view>

namespace sluice::governance::detail {

struct KeyRotationDetails {
    bool previous_key_held =
        false;  // "held": the old key signed the handover; "lost": it could not
    std::string previous_public_key;  // raw 32 bytes; empty when the log named none
    std::string public_key;           // raw 32 bytes: the key that signs from this record on
    std::string
        handover_signature;  // raw; the previous key's, over handover_message(); empty when lost
};

// {"handover_signature":"<hex>","previous_key":"held"|"lost","previous_public_key":"<hex>",
//  "public_key":"<hex>"}: keys in order, no spaces.
std::string key_rotation_details_json(const KeyRotationDetails& details);
// The details again; nullopt unless `json` is exactly what key_rotation_details_json() writes.
std::optional<KeyRotationDetails> parse_key_rotation_details(std::string_view json);

// "sluice-audit-key-handover-v1\n<hex previous public key>\n<hex public key>": what the previous
// key signs, so that whoever trusted it can follow the log to the next key.
std::string key_handover_message(std::string_view previous_public_key, std::string_view public_key);

}  // namespace sluice::governance::detail
