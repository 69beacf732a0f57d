#include "inference/detail/pretokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "inference/detail/unicode_additions.h"

namespace sluice::inference::detail {

namespace {

// Unicode White_Space (PropList.txt), unchanged since Unicode 6.3 removed U+180E.
constexpr std::string_view kWhiteSpaceRanges =
    "\\x{9}-\\x{D}\\x{20}\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}"
    "\\x{205F}\\x{3000}";

struct CodeDeleter {
    void operator()(pcre2_code* code) const { pcre2_code_free(code); }
};
struct MatchDataDeleter {
    void operator()(pcre2_match_data* data) const { pcre2_match_data_free(data); }
};
using CodePtr = std::unique_ptr<pcre2_code, CodeDeleter>;
using MatchDataPtr = std::unique_ptr<pcre2_match_data, MatchDataDeleter>;

std::string pcre2_error_text(int code) {
    PCRE2_UCHAR buffer[256];
    int n = pcre2_get_error_message(code, buffer, sizeof(buffer));
    if (n < 0) {
        return "pcre2 error " + std::to_string(code);
    }
    return std::string(reinterpret_cast<const char*>(buffer), static_cast<std::size_t>(n));
}

}  // namespace

std::string reference_unicode_pattern(std::string_view pattern) {
    // What each escape means as class contents: \s is White_Space; \p{L} and \p{N} gain the
    // code points newer Unicode versions added (unicode_additions.h).
    const std::string space(kWhiteSpaceRanges);
    const std::string letter = "\\p{L}" + std::string(kLetterAdditions);
    const std::string number = "\\p{N}" + std::string(kNumberAdditions);
    std::string out;
    out.reserve(pattern.size() + 2 * (letter.size() + number.size()));
    bool in_class = false;
    std::size_t class_start = 0;  // index in `pattern` just after '[' or '[^'
    auto emit = [&](const std::string& contents) {
        out += in_class ? contents : "[" + contents + "]";
    };
    for (std::size_t i = 0; i < pattern.size(); ++i) {
        char c = pattern[i];
        if (c == '\\' && i + 1 < pattern.size()) {
            std::string_view rest = pattern.substr(i + 1);
            if (rest.starts_with("s")) {
                emit(space);
                i += 1;
            } else if (rest.starts_with("S") && !in_class) {
                out += "[^" + space + "]";
                i += 1;
            } else if (rest.starts_with("p{L}") || rest.starts_with("pL")) {
                emit(letter);
                i += rest.starts_with("pL") ? 2 : 4;
            } else if (rest.starts_with("p{N}") || rest.starts_with("pN")) {
                emit(number);
                i += rest.starts_with("pN") ? 2 : 4;
            } else {
                out.push_back(c);
                out.push_back(pattern[++i]);
            }
            continue;
        }
        if (!in_class && c == '[') {
            in_class = true;
            out.push_back(c);
            if (i + 1 < pattern.size() && pattern[i + 1] == '^') {
                out.push_back('^');
                ++i;
            }
            class_start = i + 1;
            continue;
        }
        // A ']' first in a class is a literal, as in PCRE and Rust.
        if (in_class && c == ']' && i != class_start) {
            in_class = false;
        }
        out.push_back(c);
    }
    return out;
}

struct Pretokenizer::Impl {
    CodePtr code;
    bool jit = false;
};

Pretokenizer::Pretokenizer(std::string pattern, std::unique_ptr<Impl> impl)
    : pattern_(std::move(pattern)), impl_(std::move(impl)) {}

Pretokenizer::~Pretokenizer() = default;

Result<std::unique_ptr<Pretokenizer>> Pretokenizer::compile(std::string_view pattern) {
    std::string rewritten = reference_unicode_pattern(pattern);
    int error_code = 0;
    PCRE2_SIZE error_offset = 0;
    CodePtr code(pcre2_compile(reinterpret_cast<PCRE2_SPTR>(rewritten.data()), rewritten.size(),
                               PCRE2_UTF | PCRE2_UCP, &error_code, &error_offset, nullptr));
    if (!code) {
        return invalid_argument("pre-tokenizer pattern does not compile: " +
                                pcre2_error_text(error_code) + " at offset " +
                                std::to_string(error_offset) + " of the rewritten pattern '" +
                                rewritten + "'");
    }
    auto impl = std::make_unique<Impl>();
    // Without JIT support (some platforms) the interpreter gives the same matches, slower.
    impl->jit = pcre2_jit_compile(code.get(), PCRE2_JIT_COMPLETE) == 0;
    impl->code = std::move(code);
    return std::unique_ptr<Pretokenizer>(new Pretokenizer(std::string(pattern), std::move(impl)));
}

Status Pretokenizer::split(std::string_view text, std::vector<Piece>& pieces) const {
    if (text.empty()) {
        return Status();
    }
    MatchDataPtr match(pcre2_match_data_create_from_pattern(impl_->code.get(), nullptr));
    if (!match) {
        return internal_error("pre-tokenizer: out of memory for match data");
    }
    const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
    const PCRE2_SIZE length = text.size();
    PCRE2_SIZE offset = 0;     // where the next search starts
    PCRE2_SIZE gap_start = 0;  // first byte not yet in a piece
    auto push = [&](PCRE2_SIZE begin, PCRE2_SIZE end) {
        pieces.push_back({static_cast<std::uint32_t>(begin), static_cast<std::uint32_t>(end)});
    };
    while (offset < length) {
        int rc = impl_->jit ? pcre2_jit_match(impl_->code.get(), subject, length, offset,
                                              PCRE2_NO_UTF_CHECK, match.get(), nullptr)
                            : pcre2_match(impl_->code.get(), subject, length, offset,
                                          PCRE2_NO_UTF_CHECK, match.get(), nullptr);
        if (rc == PCRE2_ERROR_NOMATCH) {
            break;
        }
        if (rc < 0) {
            return internal_error("pre-tokenizer: matching at byte " + std::to_string(offset) +
                                  " failed: " + pcre2_error_text(rc));
        }
        const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(match.get());
        PCRE2_SIZE begin = ovector[0];
        PCRE2_SIZE end = ovector[1];
        if (end == begin) {
            // An empty match makes no piece; search again one character further on.
            offset = begin + 1;
            while (offset < length && (static_cast<unsigned char>(text[offset]) & 0xC0) == 0x80) {
                ++offset;
            }
            continue;
        }
        if (begin > gap_start) {
            push(gap_start, begin);
        }
        push(begin, end);
        gap_start = offset = end;
    }
    if (gap_start < length) {
        push(gap_start, length);
    }
    return Status();
}

}  // namespace sluice::inference::detail
