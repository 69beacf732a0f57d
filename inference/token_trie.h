#pragma once
// The vocabulary as a byte trie laid out in preorder, the shape token masks are computed over:
// walking it visits tokens in byte order, a token's prefix state is its parent's, and a rejected
// prefix skips its whole subtree (every token that starts with it) in one jump.
//
// Special tokens (<|im_end|>, ...) are not in the trie: a grammar never produces them as text;
// the end-of-turn tokens are granted separately where the grammar accepts.
//
// Thread safety: immutable once built.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "inference/tokenizer.h"

namespace sluice::inference {

class TokenTrie {
public:
    struct Node {
        int32_t end = 0;     // one past the last node of this subtree
        int32_t token = -1;  // the token whose bytes end here, -1 for none
        uint16_t depth = 0;  // bytes from the root (the root is 0)
        uint8_t byte = 0;    // the byte leading here from the parent
    };

    // Every ordinary (non-special) token of `tokenizer`.
    static std::shared_ptr<const TokenTrie> build(const Tokenizer& tokenizer);

    const std::vector<Node>& nodes() const { return nodes_; }
    int vocab_size() const { return vocab_size_; }
    // The bytes of an ordinary token; empty for ids not in the trie.
    std::string_view token_bytes(int32_t id) const;
    int32_t max_token_bytes() const { return max_token_bytes_; }
    int32_t n_tokens() const { return n_tokens_; }
    // Ids that end a turn (<|im_end|>, <|endoftext|>) in this vocabulary.
    const std::vector<int32_t>& end_of_turn_ids() const { return end_of_turn_; }

private:
    std::vector<Node> nodes_;
    std::vector<uint32_t> offsets_;  // [vocab + 1] into bytes_
    std::string bytes_;
    std::vector<int32_t> end_of_turn_;
    int vocab_size_ = 0;
    int32_t max_token_bytes_ = 0;
    int32_t n_tokens_ = 0;
};

}  // namespace sluice::inference
