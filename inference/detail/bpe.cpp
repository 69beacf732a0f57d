#include "inference/detail/bpe.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <queue>

namespace sluice::inference::detail {

namespace {

std::uint64_t mix64(std::uint64_t x) {
    // The finalizer of MurmurHash3 (fmix64): full avalanche for table indexing.
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

std::uint64_t hash_bytes(std::string_view bytes) {
    std::uint64_t h = 0x9E3779B97F4A7C15ull ^ (bytes.size() * 0x100000001B3ull);
    std::size_t pos = 0;
    while (pos + 8 <= bytes.size()) {
        std::uint64_t word;
        std::memcpy(&word, bytes.data() + pos, 8);
        h = (h ^ mix64(word)) * 0x9E3779B97F4A7C15ull;
        pos += 8;
    }
    if (pos < bytes.size()) {
        std::uint64_t word = 0;
        std::memcpy(&word, bytes.data() + pos, bytes.size() - pos);
        h = (h ^ mix64(word)) * 0x9E3779B97F4A7C15ull;
    }
    return mix64(h);
}

std::size_t table_size_for(std::size_t n) {
    std::size_t size = 16;
    while (size < 2 * n) {
        size *= 2;
    }
    return size;
}

std::string printable(std::string_view bytes) {
    std::string out;
    for (char c : bytes) {
        auto byte = static_cast<unsigned char>(c);
        if (byte >= 0x20 && byte < 0x7F && byte != '\\') {
            out.push_back(c);
        } else {
            constexpr char kHex[] = "0123456789abcdef";
            out += "\\x";
            out.push_back(kHex[byte >> 4]);
            out.push_back(kHex[byte & 0xF]);
        }
    }
    return out;
}

}  // namespace

Result<BpeModel> BpeModel::build(std::vector<std::optional<std::string>> vocab,
                                 std::optional<std::vector<std::pair<BpeId, BpeId>>> merges,
                                 bool whole_piece_lookup) {
    if (vocab.empty() || vocab.size() >= static_cast<std::size_t>(std::numeric_limits<BpeId>::max())) {
        return invalid_argument("bpe vocabulary: " + std::to_string(vocab.size()) +
                                " ids, expected between 1 and 2^31-2");
    }
    BpeModel model;
    model.rank_mode_ = !merges.has_value();
    model.whole_piece_lookup_ = whole_piece_lookup;
    model.offsets_.reserve(vocab.size() + 1);
    model.assigned_.reserve(vocab.size());
    for (std::size_t id = 0; id < vocab.size(); ++id) {
        model.offsets_.push_back(static_cast<std::uint32_t>(model.arena_.size()));
        model.assigned_.push_back(vocab[id].has_value() ? 1 : 0);
        if (vocab[id]) {
            if (vocab[id]->empty()) {
                return invalid_argument("bpe vocabulary: token " + std::to_string(id) +
                                        " has no bytes");
            }
            model.arena_ += *vocab[id];
        }
    }
    model.offsets_.push_back(static_cast<std::uint32_t>(model.arena_.size()));
    vocab.clear();
    SLUICE_RETURN_IF_ERROR(model.index_tokens());

    for (int byte = 0; byte < 256; ++byte) {
        char c = static_cast<char>(byte);
        auto id = model.find(std::string_view(&c, 1));
        if (!id) {
            return invalid_argument("bpe vocabulary: byte 0x" + printable(std::string_view(&c, 1)) +
                                    " has no token; byte-level encoding needs all 256");
        }
        model.byte_tokens_[byte] = *id;
    }

    std::vector<BpeMerge> candidates;
    if (model.rank_mode_) {
        // Every split of every token into two tokens is a merge ranked by the token's id.
        for (BpeId id = 0; static_cast<std::size_t>(id) < model.n_ids(); ++id) {
            if (!model.is_assigned(id)) {
                continue;
            }
            std::string_view bytes = model.token_bytes(id);
            std::vector<BpeMerge> local;
            for (std::size_t split = 1; split < bytes.size(); ++split) {
                auto left = model.find(bytes.substr(0, split));
                auto right = model.find(bytes.substr(split));
                if (left && right) {
                    local.push_back({*left, *right, id});
                }
            }
            std::sort(local.begin(), local.end(), [](const BpeMerge& a, const BpeMerge& b) {
                return std::pair(a.left, a.right) < std::pair(b.left, b.right);
            });
            candidates.insert(candidates.end(), local.begin(), local.end());
        }
    } else {
        candidates.reserve(merges->size());
        for (std::size_t index = 0; index < merges->size(); ++index) {
            auto [left, right] = (*merges)[index];
            if (!model.is_assigned(left) || !model.is_assigned(right)) {
                return invalid_argument("bpe merge " + std::to_string(index) + ": ids " +
                                        std::to_string(left) + " and " + std::to_string(right) +
                                        " must both be tokens");
            }
            std::string joined(model.token_bytes(left));
            joined += model.token_bytes(right);
            auto merged = model.find(joined);
            if (!merged) {
                return invalid_argument("bpe merge " + std::to_string(index) + ": '" +
                                        printable(joined) + "' is not in the vocabulary");
            }
            candidates.push_back({left, right, *merged});
        }
    }
    model.pair_slots_.assign(table_size_for(candidates.size()), PairSlot{});
    model.merges_.reserve(candidates.size());
    for (const BpeMerge& merge : candidates) {
        auto priority = model.rank_mode_ ? static_cast<std::uint32_t>(merge.merged)
                                         : static_cast<std::uint32_t>(model.merges_.size());
        SLUICE_RETURN_IF_ERROR(model.add_merge(merge.left, merge.right, merge.merged, priority));
    }
    return model;
}

Status BpeModel::index_tokens() {
    token_slots_.assign(table_size_for(n_ids()), TokenSlot{});
    const std::size_t mask = token_slots_.size() - 1;
    for (BpeId id = 0; static_cast<std::size_t>(id) < n_ids(); ++id) {
        if (!is_assigned(id)) {
            continue;
        }
        std::string_view bytes = token_bytes(id);
        std::uint64_t h = hash_bytes(bytes);
        auto tag = static_cast<std::uint32_t>(h >> 32);
        for (std::size_t slot = h & mask;; slot = (slot + 1) & mask) {
            TokenSlot& entry = token_slots_[slot];
            if (entry.id_plus_one == 0) {
                entry = {static_cast<std::uint32_t>(id) + 1, tag};
                break;
            }
            if (entry.tag == tag && token_bytes(static_cast<BpeId>(entry.id_plus_one - 1)) == bytes) {
                return invalid_argument("bpe vocabulary: ids " +
                                        std::to_string(entry.id_plus_one - 1) + " and " +
                                        std::to_string(id) + " have the same bytes '" +
                                        printable(bytes) + "'");
            }
        }
    }
    return Status();
}

Status BpeModel::add_merge(BpeId left, BpeId right, BpeId merged, std::uint32_t priority) {
    std::uint64_t key = (static_cast<std::uint64_t>(static_cast<std::uint32_t>(left)) << 32) |
                        static_cast<std::uint32_t>(right);
    const std::size_t mask = pair_slots_.size() - 1;
    for (std::size_t slot = mix64(key) & mask;; slot = (slot + 1) & mask) {
        PairSlot& entry = pair_slots_[slot];
        if (entry.key == key) {
            return Status();  // a repeated merge: the earlier, higher-priority one stands
        }
        if (entry.merged < 0) {
            entry = {key, priority, merged};
            merges_.push_back({left, right, merged});
            return Status();
        }
    }
}

std::optional<BpeId> BpeModel::find(std::string_view bytes) const {
    std::uint64_t h = hash_bytes(bytes);
    auto tag = static_cast<std::uint32_t>(h >> 32);
    const std::size_t mask = token_slots_.size() - 1;
    for (std::size_t slot = h & mask;; slot = (slot + 1) & mask) {
        const TokenSlot& entry = token_slots_[slot];
        if (entry.id_plus_one == 0) {
            return std::nullopt;
        }
        auto id = static_cast<BpeId>(entry.id_plus_one - 1);
        if (entry.tag == tag && token_bytes(id) == bytes) {
            return id;
        }
    }
}

BpeModel::PairRank BpeModel::pair_rank(BpeId left, BpeId right) const {
    std::uint64_t key = (static_cast<std::uint64_t>(static_cast<std::uint32_t>(left)) << 32) |
                        static_cast<std::uint32_t>(right);
    const std::size_t mask = pair_slots_.size() - 1;
    for (std::size_t slot = mix64(key) & mask;; slot = (slot + 1) & mask) {
        const PairSlot& entry = pair_slots_[slot];
        if (entry.key == key) {
            return {entry.priority, entry.merged};
        }
        if (entry.merged < 0) {
            return {kNoPriority, -1};
        }
    }
}

void BpeModel::encode_piece(std::string_view piece, std::vector<BpeId>& out) const {
    if (piece.size() == 1) {
        out.push_back(byte_tokens_[static_cast<unsigned char>(piece[0])]);
        return;
    }
    if (whole_piece_lookup_) {
        if (auto id = find(piece)) {
            out.push_back(*id);
            return;
        }
    }
    if (piece.size() <= kSmallPiece) {
        merge_flat(piece, out);
    } else {
        merge_heap(piece, out);
    }
}

void BpeModel::merge_flat(std::string_view piece, std::vector<BpeId>& out) const {
    // tiktoken's byte_pair_merge: scan for the lowest-priority pair (leftmost on ties), merge,
    // refresh the two pairs that touch the merged part. Quadratic, but in cache and short.
    struct Part {
        BpeId id;
        PairRank next;  // the pair this part forms with the one after it
    };
    std::array<Part, kSmallPiece> parts;
    std::size_t count = piece.size();
    for (std::size_t i = 0; i < count; ++i) {
        parts[i].id = byte_tokens_[static_cast<unsigned char>(piece[i])];
    }
    for (std::size_t i = 0; i + 1 < count; ++i) {
        parts[i].next = pair_rank(parts[i].id, parts[i + 1].id);
    }
    parts[count - 1].next = {kNoPriority, -1};
    while (count > 1) {
        std::uint32_t best = kNoPriority;
        std::size_t best_index = 0;
        for (std::size_t i = 0; i + 1 < count; ++i) {
            if (parts[i].next.priority < best) {
                best = parts[i].next.priority;
                best_index = i;
            }
        }
        if (best == kNoPriority) {
            break;
        }
        parts[best_index].id = parts[best_index].next.merged;
        std::copy(parts.begin() + best_index + 2, parts.begin() + count,
                  parts.begin() + best_index + 1);
        --count;
        parts[best_index].next = best_index + 1 < count
                                     ? pair_rank(parts[best_index].id, parts[best_index + 1].id)
                                     : PairRank{kNoPriority, -1};
        if (best_index > 0) {
            parts[best_index - 1].next = pair_rank(parts[best_index - 1].id, parts[best_index].id);
        }
    }
    for (std::size_t i = 0; i < count; ++i) {
        out.push_back(parts[i].id);
    }
}

void BpeModel::merge_heap(std::string_view piece, std::vector<BpeId>& out) const {
    // The same merge order as merge_flat, in O(n log n): parts form a linked list; a min-heap
    // holds candidate pairs keyed by (priority, position of the left part), so the heap's top is
    // the lowest priority, leftmost on ties. A part's version counts changes of its pair, which
    // makes heap entries for older pairs recognisably stale.
    constexpr std::uint32_t kNone = 0xFFFFFFFFu;
    struct Node {
        BpeId id;
        std::uint32_t prev;
        std::uint32_t next;
        std::uint32_t version;
        PairRank pair;
        bool alive;
    };
    struct Candidate {
        std::uint32_t priority;
        std::uint32_t position;
        std::uint32_t version;
        bool operator>(const Candidate& other) const {
            return std::pair(priority, position) > std::pair(other.priority, other.position);
        }
    };
    const auto n = static_cast<std::uint32_t>(piece.size());
    std::vector<Node> nodes(n);
    for (std::uint32_t i = 0; i < n; ++i) {
        nodes[i] = {byte_tokens_[static_cast<unsigned char>(piece[i])], i == 0 ? kNone : i - 1,
                    i + 1 < n ? i + 1 : kNone, 0, {kNoPriority, -1}, true};
    }
    std::vector<Candidate> storage;
    storage.reserve(n);
    std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> heap(
        std::greater<>{}, std::move(storage));
    auto refresh = [&](std::uint32_t i) {
        Node& node = nodes[i];
        ++node.version;
        node.pair = node.next == kNone ? PairRank{kNoPriority, -1}
                                       : pair_rank(node.id, nodes[node.next].id);
        if (node.pair.priority != kNoPriority) {
            heap.push({node.pair.priority, i, node.version});
        }
    };
    for (std::uint32_t i = 0; i + 1 < n; ++i) {
        refresh(i);
    }
    while (!heap.empty()) {
        Candidate top = heap.top();
        heap.pop();
        Node& node = nodes[top.position];
        if (!node.alive || node.version != top.version) {
            continue;
        }
        std::uint32_t absorbed = node.next;
        node.id = node.pair.merged;
        nodes[absorbed].alive = false;
        node.next = nodes[absorbed].next;
        if (node.next != kNone) {
            nodes[node.next].prev = top.position;
        }
        refresh(top.position);
        if (node.prev != kNone) {
            refresh(node.prev);
        }
    }
    for (std::uint32_t i = 0; i != kNone; i = nodes[i].next) {
        out.push_back(nodes[i].id);
    }
}

}  // namespace sluice::inference::detail
