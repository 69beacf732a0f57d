#pragma once
// Sets of Unicode code points as sorted, disjoint, inclusive ranges; shared by the grammar text
// parser and the regular-expression compiler.

#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace sluice::inference::detail {

using CodePointRanges = std::vector<std::pair<uint32_t, uint32_t>>;

inline constexpr uint32_t kMaxCodePoint = 0x10FFFF;

// Sorts and merges overlapping or adjacent ranges.
inline CodePointRanges normalize_ranges(CodePointRanges ranges) {
    std::sort(ranges.begin(), ranges.end());
    CodePointRanges out;
    for (const auto& [lo, hi] : ranges) {
        if (!out.empty() && lo <= out.back().second + 1) {
            out.back().second = std::max(out.back().second, hi);
        } else {
            out.emplace_back(lo, hi);
        }
    }
    return out;
}

// Every code point (surrogates aside, which have no UTF-8 form anyway) not in `ranges`.
inline CodePointRanges complement_ranges(const CodePointRanges& ranges) {
    CodePointRanges out;
    uint32_t next = 0;
    for (const auto& [lo, hi] : normalize_ranges(ranges)) {
        if (lo > next) {
            out.emplace_back(next, lo - 1);
        }
        next = hi + 1;
    }
    if (next <= kMaxCodePoint) {
        out.emplace_back(next, kMaxCodePoint);
    }
    return out;
}

// Removes the code points of `removed` from `ranges`.
inline CodePointRanges subtract_ranges(const CodePointRanges& ranges,
                                       const CodePointRanges& removed) {
    CodePointRanges out;
    const CodePointRanges keep = complement_ranges(removed);
    for (const auto& [a, b] : normalize_ranges(ranges)) {
        for (const auto& [c, d] : keep) {
            const uint32_t lo = std::max(a, c);
            const uint32_t hi = std::min(b, d);
            if (lo <= hi) {
                out.emplace_back(lo, hi);
            }
        }
    }
    return out;
}

// Decodes one UTF-8 code point at `pos`, advancing it; false for malformed input.
inline bool next_code_point(std::string_view text, size_t& pos, uint32_t& cp) {
    const auto b0 = static_cast<uint8_t>(text[pos]);
    int n = b0 < 0x80 ? 1 : (b0 >> 5) == 6 ? 2 : (b0 >> 4) == 14 ? 3 : (b0 >> 3) == 30 ? 4 : 0;
    if (n == 0 || pos + static_cast<size_t>(n) > text.size()) {
        return false;
    }
    cp = n == 1 ? b0 : n == 2 ? (b0 & 0x1Fu) : n == 3 ? (b0 & 0x0Fu) : (b0 & 0x07u);
    for (int i = 1; i < n; ++i) {
        const auto b = static_cast<uint8_t>(text[pos + static_cast<size_t>(i)]);
        if ((b & 0xC0) != 0x80) {
            return false;
        }
        cp = (cp << 6) | (b & 0x3Fu);
    }
    pos += static_cast<size_t>(n);
    return true;
}

}  // namespace sluice::inference::detail
