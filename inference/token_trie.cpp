#include "inference/token_trie.h"

#include <algorithm>
#include <numeric>

namespace sluice::inference {

std::shared_ptr<const TokenTrie> TokenTrie::build(const Tokenizer& tokenizer) {
    auto trie = std::make_shared<TokenTrie>();
    trie->vocab_size_ = tokenizer.vocab_size();
    trie->offsets_.assign(static_cast<size_t>(trie->vocab_size_) + 1, 0);
    std::vector<int32_t> ids;
    for (int32_t id = 0; id < trie->vocab_size_; ++id) {
        trie->offsets_[static_cast<size_t>(id)] = static_cast<uint32_t>(trie->bytes_.size());
        if (tokenizer.is_special(id)) {
            continue;
        }
        auto bytes = tokenizer.token_bytes(id);
        if (!bytes || bytes->empty()) {
            continue;
        }
        trie->bytes_ += *bytes;
        ids.push_back(id);
        trie->max_token_bytes_ = std::max(trie->max_token_bytes_, static_cast<int32_t>(bytes->size()));
    }
    trie->offsets_.back() = static_cast<uint32_t>(trie->bytes_.size());
    trie->n_tokens_ = static_cast<int32_t>(ids.size());
    for (const char* name : {"<|im_end|>", "<|endoftext|>"}) {
        if (auto id = tokenizer.special_token_id(name)) {
            trie->end_of_turn_.push_back(*id);
        }
    }

    std::sort(ids.begin(), ids.end(), [&](int32_t a, int32_t b) {
        return trie->token_bytes(a) < trie->token_bytes(b);
    });
    // Preorder construction over the sorted tokens: `open` holds the path from the root to the
    // last node made; a token shares the part of that path its bytes agree with.
    auto& nodes = trie->nodes_;
    nodes.push_back({0, -1, 0, 0});
    std::vector<int32_t> open{0};
    std::string_view previous;
    for (int32_t id : ids) {
        const std::string_view bytes = trie->token_bytes(id);
        size_t common = 0;
        while (common < previous.size() && common < bytes.size() &&
               previous[common] == bytes[common]) {
            ++common;
        }
        while (open.size() > common + 1) {
            nodes[static_cast<size_t>(open.back())].end = static_cast<int32_t>(nodes.size());
            open.pop_back();
        }
        for (size_t d = common; d < bytes.size(); ++d) {
            open.push_back(static_cast<int32_t>(nodes.size()));
            nodes.push_back({0, -1, static_cast<uint16_t>(d + 1), static_cast<uint8_t>(bytes[d])});
        }
        nodes[static_cast<size_t>(open.back())].token = id;
        previous = bytes;
    }
    while (!open.empty()) {
        nodes[static_cast<size_t>(open.back())].end = static_cast<int32_t>(nodes.size());
        open.pop_back();
    }
    return trie;
}

std::string_view TokenTrie::token_bytes(int32_t id) const {
    if (id < 0 || id >= vocab_size_) {
        return {};
    }
    const uint32_t begin = offsets_[static_cast<size_t>(id)];
    const uint32_t end = offsets_[static_cast<size_t>(id) + 1];
    return std::string_view(bytes_).substr(begin, end - begin);
}

}  // namespace sluice::inference
