#pragma once
// Byte-pair encoding of one pre-tokenized piece, in the two flavours tokenizer files describe:
//
//  - rank mode (tiktoken `.tiktoken` files): token ids are merge ranks; two adjacent parts merge
//    when their concatenated bytes are a token, lowest id first, leftmost on ties. This is
//    tiktoken's byte_pair_merge exactly, and the whole piece is looked up first (tiktoken emits a
//    piece that is itself a token as that one token, even if merging would not reach it).
//  - merges mode (Hugging Face `tokenizer.json`): only the listed merges apply, the earliest
//    listed first, leftmost on ties; the whole-piece lookup applies when the file asks for it
//    (`model.ignore_merges`).
//
// Both run the same merge loop over a table keyed by (left id, right id). Pieces up to
// kSmallPiece bytes use a flat scan (fast for the short pieces of real text); longer ones use a
// linked list and a binary heap, O(n log n), so one megabyte of one letter is not quadratic.
//
// Thread safety: immutable after build(); encode_piece() may run on many threads at once.

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/result.h"

namespace sluice::inference::detail {

using BpeId = std::int32_t;

struct BpeMerge {
    BpeId left = 0;
    BpeId right = 0;
    BpeId merged = 0;
};

class BpeModel {
public:
    static constexpr std::size_t kSmallPiece = 96;

    // `vocab[id]` holds the bytes of token `id` (nullopt: id unassigned). Every single byte must be
    // a token, and no two ids may share bytes. `merges` in priority order selects merges mode;
    // nullopt selects rank mode. kInvalidArgument names the offending token or merge.
    static Result<BpeModel> build(std::vector<std::optional<std::string>> vocab,
                                  std::optional<std::vector<std::pair<BpeId, BpeId>>> merges,
                                  bool whole_piece_lookup);

    // Appends the token ids of `piece` (non-empty) to `out`.
    void encode_piece(std::string_view piece, std::vector<BpeId>& out) const;

    // The id whose bytes are exactly `bytes`, if any.
    std::optional<BpeId> find(std::string_view bytes) const;

    // Number of ids, assigned or not: 1 + the largest assigned id.
    std::size_t n_ids() const { return offsets_.size() - 1; }
    bool is_assigned(BpeId id) const {
        return id >= 0 && static_cast<std::size_t>(id) < n_ids() && assigned_[id] != 0;
    }
    // The two merge strategies encode_piece() picks between by length; public so that tests can
    // check that they agree on any piece (`piece` non-empty, merge_flat: at most kSmallPiece).
    void merge_flat(std::string_view piece, std::vector<BpeId>& out) const;
    void merge_heap(std::string_view piece, std::vector<BpeId>& out) const;

    // Bytes of an assigned id.
    std::string_view token_bytes(BpeId id) const {
        return std::string_view(arena_).substr(offsets_[id], offsets_[id + 1] - offsets_[id]);
    }
    // The merges in priority order (rank mode: every split of every token, ordered by the rank of
    // the result, then by left and right id, as Hugging Face's converters write them).
    const std::vector<BpeMerge>& merges() const { return merges_; }
    bool rank_mode() const { return rank_mode_; }
    bool whole_piece_lookup() const { return whole_piece_lookup_; }

private:
    static constexpr std::uint32_t kNoPriority = 0xFFFFFFFFu;

    struct PairSlot {
        std::uint64_t key = ~std::uint64_t{0};  // (left << 32) | right; all ones when empty
        std::uint32_t priority = kNoPriority;
        BpeId merged = -1;
    };
    struct TokenSlot {
        std::uint32_t id_plus_one = 0;  // 0 when empty
        std::uint32_t tag = 0;          // high hash bits, to skip most byte comparisons
    };
    struct PairRank {
        std::uint32_t priority;
        BpeId merged;
    };

    BpeModel() = default;
    Status index_tokens();
    Status add_merge(BpeId left, BpeId right, BpeId merged, std::uint32_t priority);
    PairRank pair_rank(BpeId left, BpeId right) const;

    std::string arena_;                   // all token bytes, by id
    std::vector<std::uint32_t> offsets_;  // token id's bytes are arena_[offsets_[id], offsets_[id+1])
    std::vector<std::uint8_t> assigned_;
    std::vector<TokenSlot> token_slots_;  // open addressing, power-of-two size
    std::vector<PairSlot> pair_slots_;    // open addressing, power-of-two size
    std::vector<BpeMerge> merges_;
    std::array<BpeId, 256> byte_tokens_{};
    bool rank_mode_ = true;
    bool whole_piece_lookup_ = true;
};

}  // namespace sluice::inference::detail
