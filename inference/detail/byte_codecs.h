#pragma once
// The two byte encodings tokenizer files use for token bytes:
//  - base64 (RFC 4648, standard alphabet, '=' padding) in `.tiktoken` rank files;
//  - GPT-2's byte-to-unicode map in Hugging Face `tokenizer.json` vocabularies, which spells every
//    byte as one printable code point so that tokens are valid JSON strings.
//
// Thread safety: pure functions over immutable tables.

#include <array>
#include <optional>
#include <string>
#include <string_view>

namespace sluice::inference::detail {

// Decodes standard base64 with padding; nullopt on any character outside the alphabet, a bad
// length or misplaced padding.
std::optional<std::string> base64_decode(std::string_view text);
std::string base64_encode(std::string_view bytes);

// GPT-2 byte-level spelling: byte b becomes code point byte_level_code_point(b) in UTF-8.
char32_t byte_level_code_point(unsigned char byte);
std::string byte_level_encode(std::string_view bytes);
// The inverse; nullopt when `text` is not UTF-8 or holds a code point outside the 256 the map uses.
std::optional<std::string> byte_level_decode(std::string_view text);

}  // namespace sluice::inference::detail
