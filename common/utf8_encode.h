#pragma once
// UTF-8 encoding of one code point: the one encoder every module uses. Encoding is mechanical;
// what to do with a value that is not a Unicode scalar (a surrogate, or above U+10FFFF) is the
// caller's policy, so these functions encode whatever they are given below 0x110000 and leave
// validation and replacement to the caller.
//
// Thread safety: pure functions.

#include <cstdint>
#include <string>

namespace sluice {

// Writes the UTF-8 bytes of `cp` (below 0x110000) to `out` and returns how many (1 to 4).
inline int encode_utf8(char32_t cp, uint8_t* out) {
    if (cp < 0x80) {
        out[0] = static_cast<uint8_t>(cp);
        return 1;
    }
    if (cp < 0x800) {
        out[0] = static_cast<uint8_t>(0xC0 | (cp >> 6));
        out[1] = static_cast<uint8_t>(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = static_cast<uint8_t>(0xE0 | (cp >> 12));
        out[1] = static_cast<uint8_t>(0x80 | ((cp >> 6) & 0x3F));
        out[2] = static_cast<uint8_t>(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = static_cast<uint8_t>(0xF0 | (cp >> 18));
    out[1] = static_cast<uint8_t>(0x80 | ((cp >> 12) & 0x3F));
    out[2] = static_cast<uint8_t>(0x80 | ((cp >> 6) & 0x3F));
    out[3] = static_cast<uint8_t>(0x80 | (cp & 0x3F));
    return 4;
}

// Appends the UTF-8 bytes of `cp` (below 0x110000) to `out`.
inline void append_utf8(std::string& out, char32_t cp) {
    uint8_t bytes[4];
    const int n = encode_utf8(cp, bytes);
    out.append(reinterpret_cast<const char*>(bytes), static_cast<size_t>(n));
}

}  // namespace sluice
