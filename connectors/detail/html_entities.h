#pragma once
// HTML5's character references (`&eacute;`, `&#x1F600;`, the legacy `&copy` without ';') as
// the HTML standard's tokenizer reads them in text content: the full table of 2,231 named
// references, numeric references with the standard's replacements, and the longest legacy
// name before text that continues it (`&notit;` is "¬it;").
//
// Thread safety: pure functions over a constant table.

#include <cstddef>
#include <string>
#include <string_view>

namespace sluice::connectors::detail {

// Decodes the character reference that starts at s[pos] == '&' and appends its UTF-8 text to
// `out`. Returns the bytes it consumed, or 0 when no reference starts there (the '&' is text,
// as in "AT&T" or "&nosuch;"). Numeric references map NUL, surrogates and values past U+10FFFF
// to U+FFFD and 0x80-0x9F to the windows-1252 characters browsers show for them.
std::size_t decode_character_reference(std::string_view s, std::size_t pos, std::string& out);

}  // namespace sluice::connectors::detail
