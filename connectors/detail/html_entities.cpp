#include "connectors/detail/html_entities.h"

#include <algorithm>
#include <array>
#include <cstdint>

#include "common/utf8_encode.h"

namespace sluice::connectors::detail {

namespace {

struct NamedReference {
    std::string_view name;  // with its ';' where the name needs one
    std::string_view text;  // UTF-8, one or two code points
};

constexpr NamedReference kNamedReferences[] = {
#include "connectors/detail/html_entities_table.inc"
};

// The longest name in the table, ';' included ("CounterClockwiseContourIntegral;").
constexpr std::size_t kLongestName = 32;
// The longest legacy name, read without ';' ("middot", "curren").
constexpr std::size_t kLongestLegacyName = 6;

const NamedReference* find_named(std::string_view name) {
    const auto* end = std::end(kNamedReferences);
    const auto* it = std::lower_bound(
        std::begin(kNamedReferences), end, name,
        [](const NamedReference& entry, std::string_view key) { return entry.name < key; });
    return it != end && it->name == name ? it : nullptr;
}

bool is_ascii_alnum(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

int digit_value(char c, bool hex) {
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (hex && c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (hex && c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

// What browsers show for the C1 code points 0x80-0x9F named by a numeric reference: the
// windows-1252 character at that byte (0 where windows-1252 has none: the code point stays).
constexpr std::array<std::uint16_t, 32> kWindows1252{
    0x20AC, 0,      0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160,
    0x2039, 0x0152, 0,      0x017D, 0,      0,      0x2018, 0x2019, 0x201C, 0x201D, 0x2022,
    0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0,      0x017E, 0x0178};

std::uint32_t numeric_reference_code_point(std::uint32_t cp) {
    if (cp == 0 || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
        return 0xFFFD;
    }
    if (cp >= 0x80 && cp <= 0x9F && kWindows1252[cp - 0x80] != 0) {
        return kWindows1252[cp - 0x80];
    }
    return cp;
}

// "&#65;", "&#x41", "&#X41;": the ';' may be left out, as HTML5 reads it.
std::size_t decode_numeric(std::string_view s, std::size_t pos, std::string& out) {
    std::size_t i = pos + 2;  // past "&#"
    const bool hex = i < s.size() && (s[i] == 'x' || s[i] == 'X');
    if (hex) {
        ++i;
    }
    const std::size_t first_digit = i;
    std::uint32_t cp = 0;
    for (; i < s.size(); ++i) {
        const int v = digit_value(s[i], hex);
        if (v < 0) {
            break;
        }
        // Saturates past U+10FFFF: any longer run of digits names no character.
        cp =
            std::min<std::uint32_t>(cp * (hex ? 16 : 10) + static_cast<std::uint32_t>(v), 0x110000);
    }
    if (i == first_digit) {
        return 0;  // "&#" or "&#x" with no digits is text
    }
    if (i < s.size() && s[i] == ';') {
        ++i;
    }
    append_utf8(out, numeric_reference_code_point(cp));
    return i - pos;
}

}  // namespace

std::size_t decode_character_reference(std::string_view s, std::size_t pos, std::string& out) {
    if (pos + 1 >= s.size()) {
        return 0;
    }
    if (s[pos + 1] == '#') {
        return decode_numeric(s, pos, out);
    }
    // Names are ASCII letters and digits; a run longer than any name is cut to the longest.
    std::size_t end = pos + 1;
    while (end < s.size() && end - pos - 1 < kLongestName && is_ascii_alnum(s[end])) {
        ++end;
    }
    const std::string_view run = s.substr(pos + 1, end - pos - 1);
    if (run.empty()) {
        return 0;
    }
    if (end < s.size() && s[end] == ';' && run.size() < kLongestName) {
        const std::string_view with_semicolon = s.substr(pos + 1, run.size() + 1);
        if (const NamedReference* named = find_named(with_semicolon)) {
            out += named->text;
            return with_semicolon.size() + 1;
        }
    }
    // Without its ';' only a legacy name counts, the longest one the run starts with.
    for (std::size_t length = std::min(run.size(), kLongestLegacyName); length >= 2; --length) {
        if (const NamedReference* named = find_named(run.substr(0, length))) {
            out += named->text;
            return length + 1;
        }
    }
    return 0;
}

}  // namespace sluice::connectors::detail
