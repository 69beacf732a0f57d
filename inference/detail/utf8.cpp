#include "inference/detail/utf8.h"

#include <cstdint>

#include "common/check.h"
#include "common/utf8_encode.h"

namespace sluice::inference::detail {

namespace {

// The range allowed for the second byte of a sequence, by lead byte (Unicode table 3-7).
struct LeadInfo {
    int length;  // 0: not a lead byte
    unsigned char second_min;
    unsigned char second_max;
};

LeadInfo lead_info(unsigned char lead) {
    if (lead < 0x80) {
        return {1, 0, 0};
    }
    if (lead >= 0xC2 && lead <= 0xDF) {
        return {2, 0x80, 0xBF};
    }
    if (lead == 0xE0) {
        return {3, 0xA0, 0xBF};
    }
    if (lead == 0xED) {
        return {3, 0x80, 0x9F};  // excludes surrogates
    }
    if (lead >= 0xE1 && lead <= 0xEF) {
        return {3, 0x80, 0xBF};
    }
    if (lead == 0xF0) {
        return {4, 0x90, 0xBF};
    }
    if (lead >= 0xF1 && lead <= 0xF3) {
        return {4, 0x80, 0xBF};
    }
    if (lead == 0xF4) {
        return {4, 0x80, 0x8F};  // nothing above U+10FFFF
    }
    return {0, 0, 0};
}

}  // namespace

Utf8Step decode_utf8_step(std::string_view bytes, std::size_t pos) {
    SLUICE_CHECK(pos < bytes.size(), "decode_utf8_step past the end");
    auto byte_at = [&](std::size_t i) { return static_cast<unsigned char>(bytes[i]); };
    unsigned char lead = byte_at(pos);
    LeadInfo info = lead_info(lead);
    if (info.length == 1) {
        return {lead, 1, true, false};
    }
    if (info.length == 0) {
        return {0, 1, false, false};
    }
    char32_t code_point = lead & (0xFF >> (info.length + 1));
    for (int i = 1; i < info.length; ++i) {
        if (pos + i >= bytes.size()) {
            return {0, static_cast<std::size_t>(i), false, true};
        }
        unsigned char next = byte_at(pos + i);
        unsigned char min = i == 1 ? info.second_min : 0x80;
        unsigned char max = i == 1 ? info.second_max : 0xBF;
        if (next < min || next > max) {
            return {0, static_cast<std::size_t>(i), false, false};
        }
        code_point = (code_point << 6) | (next & 0x3F);
    }
    return {code_point, static_cast<std::size_t>(info.length), true, false};
}

std::optional<std::size_t> find_invalid_utf8(std::string_view bytes) {
    std::size_t pos = 0;
    while (pos < bytes.size()) {
        // ASCII dominates real text: skip it eight bytes at a time.
        while (pos + 8 <= bytes.size()) {
            std::uint64_t word = 0;
            for (int i = 0; i < 8; ++i) {
                word |= std::uint64_t{static_cast<unsigned char>(bytes[pos + i])} << (8 * i);
            }
            if ((word & 0x8080808080808080ull) != 0) {
                break;
            }
            pos += 8;
        }
        if (pos >= bytes.size()) {
            break;
        }
        Utf8Step step = decode_utf8_step(bytes, pos);
        if (!step.valid) {
            return pos;
        }
        pos += step.length;
    }
    return std::nullopt;
}

std::size_t incomplete_utf8_suffix(std::string_view bytes) {
    // A truncated sequence is at most 3 bytes, so only the last 3 positions can start one.
    std::size_t start = bytes.size() > 3 ? bytes.size() - 3 : 0;
    for (std::size_t pos = start; pos < bytes.size(); ++pos) {
        Utf8Step step = decode_utf8_step(bytes, pos);
        if (step.truncated && pos + step.length == bytes.size()) {
            return step.length;
        }
    }
    return 0;
}

void append_utf8_lossy(std::string& out, std::string_view bytes) {
    std::size_t pos = 0;
    while (pos < bytes.size()) {
        Utf8Step step = decode_utf8_step(bytes, pos);
        if (step.valid) {
            out.append(bytes.substr(pos, step.length));
        } else {
            out.append(kReplacementCharacter);
        }
        pos += step.length;
    }
}

void append_utf8(std::string& out, char32_t code_point) {
    SLUICE_CHECK(code_point <= 0x10FFFF && (code_point < 0xD800 || code_point > 0xDFFF),
                 "append_utf8 of a value that is not a Unicode scalar");
    sluice::append_utf8(out, code_point);
}

}  // namespace sluice::inference::detail
