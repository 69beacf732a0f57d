#pragma once
// UTF-8 validation and repair with the rules of Unicode 15 section 3.9 (no overlong forms, no
// surrogates, nothing above U+10FFFF). Invalid input is replaced by U+FFFD per maximal subpart,
// the same policy as WHATWG TextDecoder and Python's errors="replace", so that lossy text from
// the tokenizer matches what reference tools print.
//
// Thread safety: pure functions.

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace sluice::inference::detail {

struct Utf8Step {
    char32_t code_point = 0;  // valid only when `valid`
    std::size_t length = 0;   // bytes consumed: the sequence, or its maximal invalid subpart (>= 1)
    bool valid = false;
    // The bytes are a correct start of a sequence that the end of input cut short.
    bool truncated = false;
};

// Decodes the sequence that starts at `bytes[pos]`; `pos < bytes.size()`.
Utf8Step decode_utf8_step(std::string_view bytes, std::size_t pos);

// Offset of the first byte that does not begin a valid sequence, or nullopt when all is valid.
std::optional<std::size_t> find_invalid_utf8(std::string_view bytes);

// Number of trailing bytes (0..3) that begin a valid sequence the end of `bytes` cuts short.
std::size_t incomplete_utf8_suffix(std::string_view bytes);

// Appends `bytes` to `out`, each maximal invalid subpart replaced by U+FFFD.
void append_utf8_lossy(std::string& out, std::string_view bytes);

// Appends the UTF-8 encoding of a scalar value (not a surrogate, at most U+10FFFF).
void append_utf8(std::string& out, char32_t code_point);

inline constexpr std::string_view kReplacementCharacter = "\xEF\xBF\xBD";

}  // namespace sluice::inference::detail
