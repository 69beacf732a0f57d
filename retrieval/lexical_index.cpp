#include "retrieval/lexical_index.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <string>

#include "common/check.h"

namespace sluice::retrieval {
namespace {

// Below this many dead slots a compaction would cost more than the slots it frees.
constexpr std::size_t kMinDeadSlots = 1024;
constexpr std::uint32_t kGone = std::numeric_limits<std::uint32_t>::max();

}  // namespace

TermCounts count_terms(const std::vector<std::string>& terms) {
    std::map<std::string, std::uint32_t> counts;
    for (const auto& term : terms) {
        ++counts[term];
    }
    return TermCounts(counts.begin(), counts.end());
}

std::uint32_t LexicalIndex::term_id(const std::string& term) {
    auto [it, inserted] = term_ids_.emplace(term, static_cast<std::uint32_t>(postings_.size()));
    if (inserted) {
        postings_.emplace_back();
    }
    return it->second;
}

void LexicalIndex::add(std::uint64_t id, const TermCounts& terms) {
    SLUICE_CHECK(slot_of_.count(id) == 0, "lexical index: chunk " + std::to_string(id) + " added twice");
    SLUICE_CHECK(slots_.size() < kGone, "lexical index: more than 2^32 - 1 chunks");
    auto slot = static_cast<std::uint32_t>(slots_.size());
    Slot entry;
    entry.id = id;
    entry.live = true;
    for (const auto& [term, tf] : terms) {
        std::uint32_t tid = term_id(term);
        postings_[tid].push_back(Posting{slot, tf});
        entry.term_ids.push_back(tid);
        entry.length += tf;
    }
    total_length_ += entry.length;
    slots_.push_back(std::move(entry));
    slot_of_[id] = slot;
}

bool LexicalIndex::remove(std::uint64_t id) {
    auto found = slot_of_.find(id);
    if (found == slot_of_.end()) {
        return false;
    }
    std::uint32_t slot = found->second;
    Slot& entry = slots_[slot];
    for (std::uint32_t tid : entry.term_ids) {
        auto& list = postings_[tid];
        auto it = std::lower_bound(list.begin(), list.end(), slot,
                                   [](const Posting& p, std::uint32_t s) { return p.slot < s; });
        if (it != list.end() && it->slot == slot) {
            list.erase(it);
        }
    }
    total_length_ -= entry.length;
    entry.live = false;
    entry.term_ids.clear();
    entry.term_ids.shrink_to_fit();
    slot_of_.erase(found);
    const std::size_t dead = slots_.size() - slot_of_.size();
    if (dead > std::max(slot_of_.size(), kMinDeadSlots)) {
        compact();
    }
    return true;
}

void LexicalIndex::compact() {
    // Live slots keep their order, so each posting list stays sorted after renumbering.
    std::vector<std::uint32_t> new_slot(slots_.size(), kGone);
    std::vector<Slot> live;
    live.reserve(slot_of_.size());
    for (std::size_t slot = 0; slot < slots_.size(); ++slot) {
        if (slots_[slot].live) {
            new_slot[slot] = static_cast<std::uint32_t>(live.size());
            live.push_back(std::move(slots_[slot]));
        }
    }
    std::vector<std::uint32_t> new_term(postings_.size(), kGone);
    std::vector<std::vector<Posting>> postings;
    for (std::size_t tid = 0; tid < postings_.size(); ++tid) {
        if (postings_[tid].empty()) {
            continue;
        }
        new_term[tid] = static_cast<std::uint32_t>(postings.size());
        for (Posting& posting : postings_[tid]) {
            posting.slot = new_slot[posting.slot];
        }
        postings.push_back(std::move(postings_[tid]));
    }
    for (auto it = term_ids_.begin(); it != term_ids_.end();) {
        if (new_term[it->second] == kGone) {
            it = term_ids_.erase(it);
        } else {
            it->second = new_term[it->second];
            ++it;
        }
    }
    for (Slot& entry : live) {
        for (std::uint32_t& tid : entry.term_ids) {
            tid = new_term[tid];
        }
    }
    for (auto& [id, slot] : slot_of_) {
        slot = new_slot[slot];
    }
    slots_ = std::move(live);
    postings_ = std::move(postings);
}

double LexicalIndex::average_length() const {
    return slot_of_.empty() ? 0.0
                            : static_cast<double>(total_length_) /
                                  static_cast<double>(slot_of_.size());
}

std::size_t LexicalIndex::memory_bytes() const {
    std::size_t bytes = slots_.size() * sizeof(Slot) + slot_of_.size() * 32;
    for (const auto& list : postings_) {
        bytes += list.capacity() * sizeof(Posting) + sizeof(list);
    }
    for (const auto& slot : slots_) {
        bytes += slot.term_ids.capacity() * sizeof(std::uint32_t);
    }
    for (const auto& [term, tid] : term_ids_) {
        bytes += term.size() + 48;
    }
    return bytes;
}

std::vector<ScoredId> LexicalIndex::search(
    const std::vector<std::string>& query_terms, std::size_t k,
    const std::function<bool(std::uint64_t)>* allow) const {
    std::vector<ScoredId> out;
    if (k == 0 || slot_of_.empty()) {
        return out;
    }
    std::map<std::uint32_t, std::uint32_t> query_tf;
    for (const auto& term : query_terms) {
        auto it = term_ids_.find(term);
        if (it != term_ids_.end()) {
            ++query_tf[it->second];
        }
    }
    const double n_docs = static_cast<double>(slot_of_.size());
    const double avgdl = average_length();
    const double k1 = params_.k1;
    const double b = params_.b;

    // Dense accumulators by slot: one pass per query term (term at a time). state: 0 unseen,
    // 1 allowed, 2 refused by `allow`.
    std::vector<double> scores(slots_.size(), 0.0);
    std::vector<std::uint8_t> state(slots_.size(), 0);
    std::vector<std::uint32_t> touched;
    for (const auto& [tid, qtf] : query_tf) {
        const auto& list = postings_[tid];
        if (list.empty()) {
            continue;
        }
        const double df = static_cast<double>(list.size());
        const double idf = std::log(1.0 + (n_docs - df + 0.5) / (df + 0.5));
        for (const Posting& posting : list) {
            std::uint8_t& s = state[posting.slot];
            if (s == 0) {
                bool ok = allow == nullptr || (*allow)(slots_[posting.slot].id);
                s = ok ? 1 : 2;
                if (ok) {
                    touched.push_back(posting.slot);
                }
            }
            if (s != 1) {
                continue;
            }
            const double tf = posting.tf;
            const double norm = k1 * (1.0 - b + b * slots_[posting.slot].length / avgdl);
            scores[posting.slot] += qtf * idf * tf * (k1 + 1.0) / (tf + norm);
        }
    }
    out.reserve(touched.size());
    for (std::uint32_t slot : touched) {
        out.push_back(ScoredId{slots_[slot].id, scores[slot]});
    }
    auto better = [](const ScoredId& a, const ScoredId& c) {
        return a.score != c.score ? a.score > c.score : a.id < c.id;
    };
    if (out.size() > k) {
        std::partial_sort(out.begin(), out.begin() + static_cast<std::ptrdiff_t>(k), out.end(),
                          better);
        out.resize(k);
    } else {
        std::sort(out.begin(), out.end(), better);
    }
    return out;
}

}  // namespace sluice::retrieval
