#pragma once
// Splits a document into chunks of at most `max_tokens` tokens with `overlap_tokens` of overlap,
// along the document's structure: a chunk never crosses a Markdown heading (so each chunk has one
// section path), and it breaks between paragraphs, sentences and table rows before it breaks
// inside one. A single sentence or row longer than max_tokens is cut at token boundaries, each
// moved back to the start of the UTF-8 character it falls in (a byte-level BPE token can end
// inside one), so every chunk of valid UTF-8 is valid UTF-8.
//
// Token counts come through TokenCounter, so that the model's own tokenizer can be plugged in by
// app/ (retrieval does not depend on inference/).
//
// Thread safety: chunk_text is a pure function; TokenCounter implementations must be thread-safe.

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace sluice::retrieval {

class TokenCounter {
public:
    virtual ~TokenCounter() = default;
    // Byte offsets at which the tokens of `text` start, ascending; its size is the token count.
    virtual std::vector<std::size_t> token_offsets(std::string_view text) const = 0;
    // Names the counter in index settings, e.g. "approx-word-piece".
    virtual std::string name() const = 0;
    // True when every token holds at least one byte of the text (the offsets strictly ascend
    // below text.size()), so a text never has more tokens than bytes. chunk_text then keeps a
    // section of at most max_tokens bytes whole without counting its tokens; the chunks are
    // the same either way.
    virtual bool at_most_one_token_per_byte() const { return false; }
};

// An approximation of a BPE tokenizer's counts, for tests and for indexes created without a
// model: letters in pieces of up to 6 bytes, digits in groups of up to 3 (as cl100k groups
// them), other non-space characters one token each; spaces join the token that follows. On
// English prose it lands within about 15% of cl100k's counts. It is not the model's tokenizer.
class ApproxTokenCounter final : public TokenCounter {
public:
    std::vector<std::size_t> token_offsets(std::string_view text) const override;
    std::string name() const override { return "approx-word-piece"; }
    // Each piece starts at a byte of its own; trailing spaces count as no token.
    bool at_most_one_token_per_byte() const override { return true; }
};

struct ChunkingOptions {
    std::size_t max_tokens = 512;
    std::size_t overlap_tokens = 64;  // must be < max_tokens
};

Status validate(const ChunkingOptions& options);

struct ChunkSpan {
    std::size_t begin = 0;  // byte offsets into the document text
    std::size_t end = 0;
    std::vector<std::string> section_path;

    friend bool operator==(const ChunkSpan&, const ChunkSpan&) = default;
};

// The chunks of `text` in document order; empty text gives no chunks. Each chunk holds at most
// max_tokens tokens as `counter` measures its units; a window of a unit cut by tokens starts at
// the start of the character its first token starts in, so it may hold up to three bytes of the
// token before (a partial character) beyond max_tokens. Chunks begin and end on character
// boundaries (when `text` is UTF-8), cover every unit, and move forward at both ends.
// With a counter that is at_most_one_token_per_byte(), a section (the text under one heading) no
// longer in bytes than max_tokens becomes one chunk without its tokens being counted (the packer
// would make the same chunk), which is what keeps short rows from being tokenised.
// Precondition: validate(options) is ok.
std::vector<ChunkSpan> chunk_text(std::string_view text, const TokenCounter& counter,
                                  const ChunkingOptions& options);

}  // namespace sluice::retrieval
