#include "connectors/detail/utf8_text.h"

#include <utf8proc.h>

namespace sluice::connectors::detail {

namespace {

// Length of the valid UTF-8 sequence at `at`, or 0 when the byte there begins none.
std::size_t valid_length(std::string_view bytes, std::size_t at) {
    utf8proc_int32_t code_point = 0;
    const auto read =
        utf8proc_iterate(reinterpret_cast<const utf8proc_uint8_t*>(bytes.data()) + at,
                         static_cast<utf8proc_ssize_t>(bytes.size() - at), &code_point);
    return read > 0 ? static_cast<std::size_t>(read) : 0;
}

template <typename OnInvalid>
std::string rewrite(std::string_view bytes, OnInvalid on_invalid) {
    std::string out;
    out.reserve(bytes.size());
    for (std::size_t at = 0; at < bytes.size();) {
        if (const std::size_t n = valid_length(bytes, at); n > 0) {
            out.append(bytes.substr(at, n));
            at += n;
            continue;
        }
        on_invalid(out, static_cast<unsigned char>(bytes[at]));
        ++at;
    }
    return out;
}

}  // namespace

bool is_valid_utf8(std::string_view bytes) {
    for (std::size_t at = 0; at < bytes.size();) {
        const std::size_t n = valid_length(bytes, at);
        if (n == 0) {
            return false;
        }
        at += n;
    }
    return true;
}

std::string replace_invalid_utf8(std::string_view bytes) {
    if (is_valid_utf8(bytes)) {
        return std::string(bytes);
    }
    return rewrite(bytes, [](std::string& out, unsigned char) { out += "\xEF\xBF\xBD"; });
}

std::string escape_invalid_utf8(std::string_view bytes) {
    return rewrite(bytes, [](std::string& out, unsigned char byte) {
        static constexpr char kHex[] = "0123456789ABCDEF";
        out += "\\x";
        out += kHex[byte >> 4];
        out += kHex[byte & 0xF];
    });
}

}  // namespace sluice::connectors::detail
