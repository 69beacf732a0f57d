#pragma once
// The DBRX tokenizer: byte-level BPE over OpenAI's cl100k_base ranks plus special tokens, the
// only path text takes into and out of the model, and so the one prompt tokens are billed by.
//
// Encoding is exact: for every valid UTF-8 input, encode(text, kOrdinary) equals tiktoken's
// `encode_ordinary` token for token (tests/inference/tokenizer_parity_test.cpp holds the proof).
// Text is split by the pre-tokenizer pattern (PCRE2, see detail/pretokenizer.h), then each piece
// is byte-pair merged (detail/bpe.h). Time is linear in the input for any input.
//
// Special tokens (<|endoftext|>, <|im_start|>, ...) are recognised in text only in kAllowed mode,
// which is for templates the server writes. User content is always encoded in kOrdinary mode,
// where "<|im_end|>" is five ordinary tokens and cannot end a turn early.
//
// Ids: 0..100255 are cl100k's BPE tokens, 100257..100260 and 100276 cl100k's special tokens,
// 100277..100279 DBRX's. The model's vocabulary is padded to 100352 ids; the ids in it that
// no token holds (100256, 100261..100275, 100280..100351) are rejected by decode().
//
// Construction: tokenizer_files.h (a `.tiktoken` rank file) and hf_tokenizer.h (a Hugging Face
// checkpoint folder) build a TokenizerSpec and call Tokenizer::create().
//
// Thread safety: immutable once created; every const method may run on many threads at once.

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace sluice::inference {

using TokenId = std::int32_t;

// The pre-tokenizer pattern of cl100k_base, as tiktoken defines it.
inline constexpr std::string_view kCl100kPattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

// Token ids of the DBRX vocabulary.
namespace dbrx {
inline constexpr TokenId kEndOfText = 100257;   // <|endoftext|>
inline constexpr TokenId kFimPrefix = 100258;   // <|fim_prefix|>
inline constexpr TokenId kFimMiddle = 100259;   // <|fim_middle|>
inline constexpr TokenId kFimSuffix = 100260;   // <|fim_suffix|>
inline constexpr TokenId kEndOfPrompt = 100276; // <|endofprompt|>
inline constexpr TokenId kPad = 100277;         // <|pad|>
inline constexpr TokenId kImStart = 100278;     // <|im_start|>
inline constexpr TokenId kImEnd = 100279;       // <|im_end|>
inline constexpr int kVocabSize = 100352;       // the model's embedding rows (padded)
inline constexpr int kBpeTokens = 100256;       // cl100k_base ranks 0..100255
}  // namespace dbrx

struct SpecialToken {
    std::string text;  // "<|im_start|>"
    TokenId id = 0;
};

// The special tokens of cl100k_base followed by those DBRX adds, in id order.
std::vector<SpecialToken> dbrx_special_tokens();

enum class SpecialTokenMode {
    kOrdinary,  // special-token text is plain text (user content, always)
    kAllowed,   // special-token text becomes its special token (server-written templates)
};

// Everything a tokenizer is made of; loaders fill it, Tokenizer::create() checks and indexes it.
struct TokenizerSpec {
    std::string name;  // for messages: "cl100k_base", a file or folder path
    // bpe_tokens[id]: the bytes of BPE token `id`; nullopt for an id held by no BPE token.
    std::vector<std::optional<std::string>> bpe_tokens;
    // Merge rules in priority order (Hugging Face); nullopt means tiktoken rank semantics.
    std::optional<std::vector<std::pair<TokenId, TokenId>>> merges;
    // Emit a piece that is itself a token as that token without merging (tiktoken always does;
    // Hugging Face when `ignore_merges` is set).
    bool whole_piece_lookup = true;
    std::string pattern = std::string(kCl100kPattern);
    std::vector<SpecialToken> special_tokens;
    // The model's vocabulary size; 0 means one more than the largest id.
    int vocab_size = 0;
};

class Tokenizer {
public:
    // Checks and indexes a spec. kInvalidArgument when a special token shares an id or text with
    // another token, ids are negative or beyond vocab_size, the pattern does not compile, or the
    // BPE tables are inconsistent (detail/bpe.h).
    static Result<std::unique_ptr<Tokenizer>> create(TokenizerSpec spec);
    ~Tokenizer();
    Tokenizer(const Tokenizer&) = delete;
    Tokenizer& operator=(const Tokenizer&) = delete;

    // Encodes UTF-8 text. kInvalidArgument "invalid utf-8 at byte N" for malformed input (the
    // offset of the first bad byte); kPayloadTooLarge for 4 GiB or more.
    Result<std::vector<TokenId>> encode(std::string_view text,
                                        SpecialTokenMode mode = SpecialTokenMode::kOrdinary) const;
    // As encode(), appending to `out`; on error `out` keeps what it held before the call.
    Status encode_into(std::string_view text, SpecialTokenMode mode,
                       std::vector<TokenId>& out) const;
    // The number of tokens encode() would return.
    Result<std::size_t> count(std::string_view text,
                              SpecialTokenMode mode = SpecialTokenMode::kOrdinary) const;

    // Encodes many texts on `n_threads` std::jthread workers (1: on the calling thread). The
    // results are in input order. On failure the error names the first failing text's index.
    Result<std::vector<std::vector<TokenId>>> encode_batch(
        std::span<const std::string_view> texts, SpecialTokenMode mode, int n_threads) const;

    // The bytes of `ids` concatenated, special tokens as their text. The bytes need not be valid
    // UTF-8 (a token may hold part of a character). kInvalidArgument naming the position and id
    // of the first id that is negative, beyond the vocabulary, or held by no token.
    Result<std::string> decode(std::span<const TokenId> ids) const;
    // decode() made valid UTF-8: each maximal invalid subpart becomes U+FFFD.
    Result<std::string> decode_text(std::span<const TokenId> ids) const;
    // OK when every id is held by a token; otherwise the error decode() would give.
    Status check_ids(std::span<const TokenId> ids) const;

    // The bytes of one assigned id (BPE or special), nullopt otherwise.
    std::optional<std::string_view> token_bytes(TokenId id) const;
    std::optional<TokenId> special_token_id(std::string_view text) const;
    bool is_special(TokenId id) const;
    const std::vector<SpecialToken>& special_tokens() const { return special_tokens_; }

    int vocab_size() const { return vocab_size_; }
    // One more than the largest BPE id.
    int n_bpe_ids() const;
    const std::string& name() const { return name_; }
    const std::string& pattern() const;
    // Merge rules in priority order, as (left, right, merged) ids; see detail/bpe.h.
    std::vector<std::array<TokenId, 3>> merges() const;
    bool rank_mode() const;
    bool whole_piece_lookup() const;

private:
    struct Impl;
    Tokenizer(std::string name, std::vector<SpecialToken> special_tokens, int vocab_size,
              std::unique_ptr<Impl> impl);
    Status encode_ordinary_into(std::string_view text, std::vector<TokenId>& out) const;
    Status id_error(std::size_t position, TokenId id) const;

    std::string name_;
    std::vector<SpecialToken> special_tokens_;
    int vocab_size_ = 0;
    std::unique_ptr<Impl> impl_;
};

}  // namespace sluice::inference
