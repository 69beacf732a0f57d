#include "inference/tokenizer.h"

#include <algorithm>
#include <limits>
#include <unordered_map>

#include "inference/detail/bpe.h"
#include "inference/detail/pretokenizer.h"
#include "inference/detail/utf8.h"

namespace sluice::inference {

std::vector<SpecialToken> dbrx_special_tokens() {
    return {{"<|endoftext|>", dbrx::kEndOfText},   {"<|fim_prefix|>", dbrx::kFimPrefix},
            {"<|fim_middle|>", dbrx::kFimMiddle},  {"<|fim_suffix|>", dbrx::kFimSuffix},
            {"<|endofprompt|>", dbrx::kEndOfPrompt}, {"<|pad|>", dbrx::kPad},
            {"<|im_start|>", dbrx::kImStart},      {"<|im_end|>", dbrx::kImEnd}};
}

struct Tokenizer::Impl {
    detail::BpeModel bpe;
    std::unique_ptr<detail::Pretokenizer> pretokenizer;
    std::unordered_map<TokenId, std::size_t> special_index;  // id -> index in special_tokens_
};

Tokenizer::Tokenizer(std::string name, std::vector<SpecialToken> special_tokens, int vocab_size,
                     std::unique_ptr<Impl> impl)
    : name_(std::move(name)),
      special_tokens_(std::move(special_tokens)),
      vocab_size_(vocab_size),
      impl_(std::move(impl)) {}

Tokenizer::~Tokenizer() = default;

Result<std::unique_ptr<Tokenizer>> Tokenizer::create(TokenizerSpec spec) {
    auto context = [&](const Status& status) { return status.with_context("tokenizer " + spec.name); };
    auto pretokenizer = detail::Pretokenizer::compile(spec.pattern);
    if (!pretokenizer) {
        return context(pretokenizer.status());
    }
    auto bpe = detail::BpeModel::build(std::move(spec.bpe_tokens), std::move(spec.merges),
                                       spec.whole_piece_lookup);
    if (!bpe) {
        return context(bpe.status());
    }
    auto impl = std::make_unique<Impl>(Impl{std::move(*bpe), std::move(*pretokenizer), {}});

    auto largest = static_cast<TokenId>(impl->bpe.n_ids()) - 1;
    std::sort(spec.special_tokens.begin(), spec.special_tokens.end(),
              [](const SpecialToken& a, const SpecialToken& b) { return a.id < b.id; });
    for (std::size_t i = 0; i < spec.special_tokens.size(); ++i) {
        const SpecialToken& special = spec.special_tokens[i];
        if (special.id < 0 || special.text.empty()) {
            return context(invalid_argument("special token '" + special.text + "' has id " +
                                            std::to_string(special.id) +
                                            ", expected a non-negative id and non-empty text"));
        }
        if (impl->bpe.is_assigned(special.id)) {
            return context(invalid_argument("special token '" + special.text + "' has id " +
                                            std::to_string(special.id) +
                                            ", which a BPE token already holds"));
        }
        if (!impl->special_index.emplace(special.id, i).second) {
            return context(invalid_argument("special tokens '" +
                                            spec.special_tokens[impl->special_index[special.id]].text +
                                            "' and '" + special.text + "' share id " +
                                            std::to_string(special.id)));
        }
        if (auto found = detail::find_invalid_utf8(special.text)) {
            return context(invalid_argument("special token with id " + std::to_string(special.id) +
                                            ": invalid utf-8 at byte " + std::to_string(*found)));
        }
        largest = std::max(largest, special.id);
    }
    for (std::size_t i = 0; i < spec.special_tokens.size(); ++i) {
        for (std::size_t j = i + 1; j < spec.special_tokens.size(); ++j) {
            if (spec.special_tokens[i].text == spec.special_tokens[j].text) {
                return context(invalid_argument("special token '" + spec.special_tokens[i].text +
                                                "' has two ids: " +
                                                std::to_string(spec.special_tokens[i].id) + " and " +
                                                std::to_string(spec.special_tokens[j].id)));
            }
        }
    }
    int vocab_size = spec.vocab_size == 0 ? largest + 1 : spec.vocab_size;
    if (vocab_size <= largest) {
        return context(invalid_argument("vocabulary size " + std::to_string(vocab_size) +
                                        " is too small for token id " + std::to_string(largest)));
    }
    return std::unique_ptr<Tokenizer>(new Tokenizer(std::move(spec.name),
                                                    std::move(spec.special_tokens), vocab_size,
                                                    std::move(impl)));
}

Status Tokenizer::encode_ordinary_into(std::string_view text, std::vector<TokenId>& out) const {
    if (text.size() >= std::numeric_limits<std::uint32_t>::max()) {
        return Status(StatusCode::kPayloadTooLarge,
                      "text of " + std::to_string(text.size()) + " bytes, expected under 4 GiB");
    }
    if (auto bad = detail::find_invalid_utf8(text)) {
        return invalid_argument("invalid utf-8 at byte " + std::to_string(*bad));
    }
    std::vector<detail::Piece> pieces;
    pieces.reserve(text.size() / 4 + 1);
    SLUICE_RETURN_IF_ERROR(impl_->pretokenizer->split(text, pieces));
    const std::size_t size_before = out.size();
    out.reserve(size_before + pieces.size() + pieces.size() / 4);
    for (const detail::Piece& piece : pieces) {
        impl_->bpe.encode_piece(text.substr(piece.begin, piece.end - piece.begin), out);
    }
    return Status();
}

Status Tokenizer::encode_into(std::string_view text, SpecialTokenMode mode,
                              std::vector<TokenId>& out) const {
    const std::size_t size_before = out.size();
    auto fail = [&](Status status) {
        out.resize(size_before);
        return status;
    };
    if (mode == SpecialTokenMode::kOrdinary || special_tokens_.empty()) {
        Status status = encode_ordinary_into(text, out);
        return status.ok() ? status : fail(std::move(status));
    }
    // Validate the whole text first, so that errors give offsets into it, not into a segment.
    if (auto bad = detail::find_invalid_utf8(text)) {
        return invalid_argument("invalid utf-8 at byte " + std::to_string(*bad));
    }
    // The next occurrence of each special token at or after `start`; refreshed only when passed,
    // so that the scan stays linear in the text for any number of occurrences.
    std::vector<std::size_t> next(special_tokens_.size());
    for (std::size_t i = 0; i < special_tokens_.size(); ++i) {
        next[i] = text.find(special_tokens_[i].text);
    }
    std::size_t start = 0;
    while (start < text.size()) {
        std::size_t best = std::string_view::npos;
        std::size_t best_index = 0;
        for (std::size_t i = 0; i < special_tokens_.size(); ++i) {
            if (next[i] != std::string_view::npos && next[i] < start) {
                next[i] = text.find(special_tokens_[i].text, start);
            }
            // Leftmost occurrence; at the same offset the longest text wins.
            if (next[i] < best || (next[i] == best && next[i] != std::string_view::npos &&
                                   special_tokens_[i].text.size() >
                                       special_tokens_[best_index].text.size())) {
                best = next[i];
                best_index = i;
            }
        }
        std::size_t end = best == std::string_view::npos ? text.size() : best;
        if (end > start) {
            Status status = encode_ordinary_into(text.substr(start, end - start), out);
            if (!status.ok()) {
                return fail(std::move(status));
            }
        }
        if (best == std::string_view::npos) {
            break;
        }
        out.push_back(special_tokens_[best_index].id);
        start = best + special_tokens_[best_index].text.size();
    }
    return Status();
}

Result<std::vector<TokenId>> Tokenizer::encode(std::string_view text, SpecialTokenMode mode) const {
    std::vector<TokenId> ids;
    SLUICE_RETURN_IF_ERROR(encode_into(text, mode, ids));
    return ids;
}

Result<std::size_t> Tokenizer::count(std::string_view text, SpecialTokenMode mode) const {
    std::vector<TokenId> ids;
    SLUICE_RETURN_IF_ERROR(encode_into(text, mode, ids));
    return ids.size();
}

Status Tokenizer::id_error(std::size_t position, TokenId id) const {
    std::string where = "token id " + std::to_string(id) + " at position " + std::to_string(position);
    if (id < 0 || id >= vocab_size_) {
        return invalid_argument(where + " is out of range: the vocabulary has ids 0.." +
                                std::to_string(vocab_size_ - 1));
    }
    return invalid_argument(where + " is not assigned to any token (vocabulary padding or a gap)");
}

std::optional<std::string_view> Tokenizer::token_bytes(TokenId id) const {
    if (impl_->bpe.is_assigned(id)) {
        return impl_->bpe.token_bytes(id);
    }
    auto it = impl_->special_index.find(id);
    if (it == impl_->special_index.end()) {
        return std::nullopt;
    }
    return std::string_view(special_tokens_[it->second].text);
}

Status Tokenizer::check_ids(std::span<const TokenId> ids) const {
    for (std::size_t i = 0; i < ids.size(); ++i) {
        if (!impl_->bpe.is_assigned(ids[i]) && !impl_->special_index.contains(ids[i])) {
            return id_error(i, ids[i]);
        }
    }
    return Status();
}

Result<std::string> Tokenizer::decode(std::span<const TokenId> ids) const {
    std::string out;
    out.reserve(ids.size() * 4);
    for (std::size_t i = 0; i < ids.size(); ++i) {
        auto bytes = token_bytes(ids[i]);
        if (!bytes) {
            return id_error(i, ids[i]);
        }
        out.append(*bytes);
    }
    return out;
}

Result<std::string> Tokenizer::decode_text(std::span<const TokenId> ids) const {
    SLUICE_ASSIGN_OR_RETURN(std::string bytes, decode(ids));
    if (!detail::find_invalid_utf8(bytes)) {
        return bytes;
    }
    std::string text;
    detail::append_utf8_lossy(text, bytes);
    return text;
}

std::optional<TokenId> Tokenizer::special_token_id(std::string_view text) const {
    for (const SpecialToken& special : special_tokens_) {
        if (special.text == text) {
            return special.id;
        }
    }
    return std::nullopt;
}

bool Tokenizer::is_special(TokenId id) const { return impl_->special_index.contains(id); }

int Tokenizer::n_bpe_ids() const { return static_cast<int>(impl_->bpe.n_ids()); }

const std::string& Tokenizer::pattern() const { return impl_->pretokenizer->pattern(); }

std::vector<std::array<TokenId, 3>> Tokenizer::merges() const {
    std::vector<std::array<TokenId, 3>> out;
    out.reserve(impl_->bpe.merges().size());
    for (const detail::BpeMerge& merge : impl_->bpe.merges()) {
        out.push_back({merge.left, merge.right, merge.merged});
    }
    return out;
}

bool Tokenizer::rank_mode() const { return impl_->bpe.rank_mode(); }

bool Tokenizer::whole_piece_lookup() const { return impl_->bpe.whole_piece_lookup(); }

}  // namespace sluice::inference
