#pragma once
// Splits text into the pieces that byte-pair encoding runs on, by a regular expression compiled
// with PCRE2 (UTF + UCP, JIT when the platform has it).
//
// Reference semantics are those of the Rust `regex`/`fancy-regex` crates that tiktoken and
// Hugging Face tokenizers use, with Unicode 16.0 tables. PCRE2 differs in two ways that change
// tokens, and compile() rewrites the pattern to remove both before PCRE2 sees it:
//  - with UCP, PCRE2's `\s` is "property Z or HT, LF, VT, FF, CR" and misses U+0085, which
//    Unicode's White_Space (the Rust meaning) includes: `\s`/`\S` become the explicit set;
//  - PCRE2 10.42 has Unicode 14.0 tables: `\p{L}`/`\p{N}` gain the letters and numbers added
//    since (detail/unicode_additions.h, generated from the Unicode data).
// A PCRE2 with newer tables than the reference would classify the newest code points apart; the
// code-point sweep in the parity cases detects it.
//
// Text between matches (none for the cl100k pattern, which matches every character) becomes a
// piece of its own, as Hugging Face's "Isolated" split does, so no byte is ever dropped.
//
// Matching is linear in the input for tokenizer patterns: the subject is checked for UTF-8 once
// by the caller and never again per match (PCRE2_NO_UTF_CHECK), which would be quadratic.
//
// Thread safety: immutable after compile(); split() may run on many threads at once.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace sluice::inference::detail {

struct Piece {
    std::uint32_t begin = 0;  // byte offsets into the text, [begin, end)
    std::uint32_t end = 0;
};

// The pattern with `\s`, `\S` (outside classes), `\p{L}` and `\p{N}` spelled out as above.
std::string reference_unicode_pattern(std::string_view pattern);

class Pretokenizer {
public:
    // Compiles `pattern` (Rust/PCRE syntax). kInvalidArgument with PCRE2's message and offset
    // when it does not compile.
    static Result<std::unique_ptr<Pretokenizer>> compile(std::string_view pattern);
    ~Pretokenizer();
    Pretokenizer(const Pretokenizer&) = delete;
    Pretokenizer& operator=(const Pretokenizer&) = delete;

    // Appends the pieces of `text` to `pieces`, covering it end to end. `text` must be valid
    // UTF-8 (the caller checks) and shorter than 4 GiB. kInternal when PCRE2 reports a matching
    // failure (resource limits), which well-formed tokenizer patterns do not reach.
    Status split(std::string_view text, std::vector<Piece>& pieces) const;

    const std::string& pattern() const { return pattern_; }

private:
    struct Impl;
    Pretokenizer(std::string pattern, std::unique_ptr<Impl> impl);

    std::string pattern_;  // as given, before the whitespace rewrite
    std::unique_ptr<Impl> impl_;
};

}  // namespace sluice::inference::detail
