#pragma once
// The in-memory BM25 ranker over analyzed chunk terms (Robertson/Sparck Jones BM25 with Lucene's
// idf = ln(1 + (N - df + 0.5) / (df + 0.5)) and k1 = 1.2, b = 0.75 by default). Postings hold
// (slot, term frequency); a forward list per chunk makes deletes exact, so an updated corpus
// scores exactly like one built from scratch. Persistence is the chunk store's job: it keeps
// each chunk's term counts, and Index rebuilds this structure from them on open.
//
// Slots are handed out in order and not reused, so that postings stay sorted by appending. A
// removed chunk leaves its slot dead; once dead slots outnumber live ones (past a floor), remove()
// renumbers the live slots in order and drops terms no chunk holds any more, so that an index
// updated for ever stays the size of its corpus, and a search's per-slot accumulators with it.
//
// Thread safety: not synchronized. Callers hold a shared lock for search() and an exclusive lock
// for add() and remove() (Index does).

#include <cstdint>
#include <functional>
#include <string>
#include <unordered_map>
#include <vector>

namespace sluice::retrieval {

struct Bm25Params {
    double k1 = 1.2;
    double b = 0.75;
};

// (term, frequency) pairs of one chunk, each term once.
using TermCounts = std::vector<std::pair<std::string, std::uint32_t>>;
TermCounts count_terms(const std::vector<std::string>& terms);

struct ScoredId {
    std::uint64_t id = 0;
    double score = 0;
};

class LexicalIndex {
public:
    explicit LexicalIndex(Bm25Params params = {}) : params_(params) {}

    // Adds a chunk. Precondition: `id` is not present (remove it first to replace).
    void add(std::uint64_t id, const TermCounts& terms);
    // Removes a chunk; false when it was not present.
    bool remove(std::uint64_t id);
    bool contains(std::uint64_t id) const { return slot_of_.count(id) != 0; }

    // The k best chunks for the query terms (repeated terms weigh more, as in a Lucene boolean
    // query), best first, ties by smaller id. `allow`, when set, is asked once per candidate
    // before it is scored; a chunk it refuses is never scored or returned.
    std::vector<ScoredId> search(const std::vector<std::string>& query_terms, std::size_t k,
                                 const std::function<bool(std::uint64_t)>* allow = nullptr) const;

    std::size_t size() const { return slot_of_.size(); }
    std::size_t term_count() const { return postings_.size(); }
    double average_length() const;
    // Approximate heap bytes held (postings, forward lists, dictionary).
    std::size_t memory_bytes() const;
    // Slots held, live and dead: what a search's accumulators are sized by.
    std::size_t slot_count() const { return slots_.size(); }

private:
    struct Posting {
        std::uint32_t slot;
        std::uint32_t tf;
    };
    struct Slot {
        std::uint64_t id = 0;
        std::uint32_t length = 0;
        bool live = false;
        std::vector<std::uint32_t> term_ids;  // forward list for remove()
    };

    std::uint32_t term_id(const std::string& term);
    // Renumbers the live slots in order and drops terms without postings.
    void compact();

    Bm25Params params_;
    std::unordered_map<std::string, std::uint32_t> term_ids_;
    std::vector<std::vector<Posting>> postings_;  // by term id, sorted by slot
    std::vector<Slot> slots_;                     // in order of adding; see compact()
    std::unordered_map<std::uint64_t, std::uint32_t> slot_of_;
    std::uint64_t total_length_ = 0;
};

}  // namespace sluice::retrieval
