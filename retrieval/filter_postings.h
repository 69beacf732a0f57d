#pragma once
// Posting lists of chunk ids per metadata value and per ACL name, so that a query whose filter
// (or whose reader's access) admits few chunks scans only those, instead of asking the admission
// predicate about every indexed chunk.
//
// candidates() returns a SUPERSET of the chunks that the filter and the reader's ACL admit:
//   - equals reads the list of its value, in the union of its values' lists;
//   - and takes its narrowest child (the caller's predicate checks the others), or the union
//     of its children when every child narrows;
//   - range, prefix, not and "all" do not narrow;
//   - the ACL narrows to the union of the lists of the reader's principal and groups;
// and the narrower of filter and ACL wins. Lists are keyed by a 64-bit hash of (field, value):
// a collision only widens a list, and callers still run the full predicate (filter and ACL) on
// every candidate before it is scored, so correctness never rests on the hash.
//
// Memory: 8 bytes per chunk per metadata field and per ACL name, plus one hash-table node and
// list per distinct value.
//
// Thread safety: not synchronized (like LexicalIndex): Index holds its shared lock for
// candidates() and its exclusive lock for add() and remove().

#include <cstdint>
#include <optional>
#include <unordered_map>
#include <vector>

#include "retrieval/filter.h"
#include "retrieval/types.h"

namespace sluice::retrieval {

class FilterPostings {
public:
    // Indexes a chunk under every metadata value and ACL name it carries.
    void add(std::uint64_t id, const Metadata& metadata, const Acl& acl);
    // Forgets a chunk; `metadata` and `acl` must be those it was added with.
    void remove(std::uint64_t id, const Metadata& metadata, const Acl& acl);

    // The candidate ids in increasing order, or nullopt when neither the filter nor the ACL
    // narrows the search to at most `limit` ids (the caller then plans without them).
    std::optional<std::vector<std::uint64_t>> candidates(const Filter& filter,
                                                         const Reader& reader,
                                                         std::size_t limit) const;

    std::size_t lists() const { return lists_.size(); }
    // Approximate heap bytes held.
    std::size_t memory_bytes() const;

private:
    // A union of posting lists; `size` is the sum of their sizes (an upper bound).
    struct Union {
        std::vector<const std::vector<std::uint64_t>*> lists;
        std::size_t size = 0;
    };

    std::optional<Union> narrow(const Filter& filter) const;
    void add_to(std::uint64_t key, std::uint64_t id);
    void remove_from(std::uint64_t key, std::uint64_t id);
    const std::vector<std::uint64_t>* list(std::uint64_t key) const;

    std::unordered_map<std::uint64_t, std::vector<std::uint64_t>> lists_;  // key -> sorted ids
};

}  // namespace sluice::retrieval
