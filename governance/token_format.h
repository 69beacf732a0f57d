#pragma once
// The shape of Sluice API tokens: "slc_" + 64 hex digits of secret (256 random bits) + 8 hex
// digits of checksum (the first 4 bytes of SHA-256 over "slc_" and the secret digits).
//
// The fixed prefix and the checksum let secret scanners find leaked tokens with the regular
// expression `slc_[0-9a-f]{72}` and confirm a hit without the database; the server also uses the
// checksum to turn away mistyped or made-up tokens before touching storage.
//
// Thread safety: pure functions.

#include <string>
#include <string_view>

#include "common/result.h"

namespace sluice::governance {

inline constexpr std::string_view kTokenPrefix = "slc_";
inline constexpr std::size_t kTokenLength = 4 + 64 + 8;

// A new token from 32 random bytes.
Result<std::string> generate_token();
// Whether `text` has the prefix, the length, hex digits and a matching checksum.
bool is_well_formed_token(std::string_view text);

}  // namespace sluice::governance
