#include "inference/detail/byte_codecs.h"

#include <cstdint>

#include "inference/detail/utf8.h"

namespace sluice::inference::detail {

namespace {

constexpr std::string_view kBase64Alphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int base64_value(char c) {
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }
    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }
    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }
    if (c == '+') {
        return 62;
    }
    if (c == '/') {
        return 63;
    }
    return -1;
}

// GPT-2's bytes_to_unicode(): printable Latin-1 bytes ('!'..'~', '¡'..'¬', '®'..'ÿ') stand for
// themselves; the other 68 bytes map in byte order to U+0100, U+0101, ...
std::array<char32_t, 256> make_byte_level_table() {
    std::array<char32_t, 256> table{};
    char32_t next = 0x100;
    for (int byte = 0; byte < 256; ++byte) {
        bool printable = (byte >= 0x21 && byte <= 0x7E) || (byte >= 0xA1 && byte <= 0xAC) ||
                         (byte >= 0xAE && byte <= 0xFF);
        table[byte] = printable ? static_cast<char32_t>(byte) : next++;
    }
    return table;
}

const std::array<char32_t, 256>& byte_level_table() {
    static const std::array<char32_t, 256> table = make_byte_level_table();
    return table;
}

}  // namespace

std::optional<std::string> base64_decode(std::string_view text) {
    if (text.size() % 4 != 0) {
        return std::nullopt;
    }
    std::string out;
    out.reserve(text.size() / 4 * 3);
    for (std::size_t i = 0; i < text.size(); i += 4) {
        bool last = i + 4 == text.size();
        int padding = 0;
        std::uint32_t group = 0;
        for (std::size_t j = 0; j < 4; ++j) {
            char c = text[i + j];
            if (c == '=' && last && j >= 2) {
                ++padding;
                group <<= 6;
                continue;
            }
            int value = base64_value(c);
            if (value < 0 || padding > 0) {
                return std::nullopt;
            }
            group = (group << 6) | static_cast<std::uint32_t>(value);
        }
        out.push_back(static_cast<char>(group >> 16));
        if (padding < 2) {
            out.push_back(static_cast<char>((group >> 8) & 0xFF));
        }
        if (padding < 1) {
            out.push_back(static_cast<char>(group & 0xFF));
        }
    }
    return out;
}

std::string base64_encode(std::string_view bytes) {
    std::string out;
    out.reserve((bytes.size() + 2) / 3 * 4);
    for (std::size_t i = 0; i < bytes.size(); i += 3) {
        std::size_t n = std::min<std::size_t>(3, bytes.size() - i);
        std::uint32_t group = 0;
        for (std::size_t j = 0; j < 3; ++j) {
            unsigned char byte = j < n ? static_cast<unsigned char>(bytes[i + j]) : 0;
            group = (group << 8) | byte;
        }
        for (std::size_t j = 0; j < 4; ++j) {
            out.push_back(j <= n ? kBase64Alphabet[(group >> (18 - 6 * j)) & 0x3F] : '=');
        }
    }
    return out;
}

char32_t byte_level_code_point(unsigned char byte) { return byte_level_table()[byte]; }

std::string byte_level_encode(std::string_view bytes) {
    std::string out;
    out.reserve(bytes.size() * 2);
    for (char byte : bytes) {
        append_utf8(out, byte_level_code_point(static_cast<unsigned char>(byte)));
    }
    return out;
}

std::optional<std::string> byte_level_decode(std::string_view text) {
    // Inverse table over the code points the map uses (all below U+0144).
    static const std::array<int, 0x200> inverse = [] {
        std::array<int, 0x200> table{};
        table.fill(-1);
        for (int byte = 0; byte < 256; ++byte) {
            table[byte_level_code_point(static_cast<unsigned char>(byte))] = byte;
        }
        return table;
    }();
    std::string out;
    out.reserve(text.size());
    std::size_t pos = 0;
    while (pos < text.size()) {
        Utf8Step step = decode_utf8_step(text, pos);
        if (!step.valid || step.code_point >= inverse.size() || inverse[step.code_point] < 0) {
            return std::nullopt;
        }
        out.push_back(static_cast<char>(inverse[step.code_point]));
        pos += step.length;
    }
    return out;
}

}  // namespace sluice::inference::detail
