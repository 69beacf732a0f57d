#pragma once
// UTF-8 validity for what the connectors hand on: document text read from files in another
// encoding, and file names, which Linux lets be any bytes. Decoding is utf8proc's (the library
// retrieval/ checks metadata names with), so both modules agree on what is valid.
//
// Thread safety: pure functions.

#include <string>
#include <string_view>

namespace sluice::connectors::detail {

bool is_valid_utf8(std::string_view bytes);

// `bytes` with each byte that does not begin a valid UTF-8 sequence replaced by U+FFFD (the
// replacement character browsers and most ingestion tools use); valid text is returned as is.
std::string replace_invalid_utf8(std::string_view bytes);

// `bytes` with each byte that does not begin a valid UTF-8 sequence written as "\xNN"
// (upper-case hex): a stable, printable, JSON-safe name for an arbitrary file name.
std::string escape_invalid_utf8(std::string_view bytes);

}  // namespace sluice::connectors::detail
