#pragma once
// Posting lists of chunk ids per metadata value and per ACL name, so that a query whose filter
// (or whose reader's access) admits few chunks scans only those, instead of asking the admission
// predicate about every indexed chunk.
//
// Each metadata field keeps its values in order (numbers, integers and floats together, in a
// sorted map, text in another; false and true in a list each), each value with the sorted ids
// of the chunks that carry it. A
// filter leaf is a set of value spans of one field (detail/value_spans.h): equals and in are
// points, range an interval of numbers or of text, prefix the text interval [p, p with its last
// byte raised). candidates() evaluates the filter over those lists:
//   - a leaf reads the lists of the values inside its spans;
//   - `not` is pushed down to the leaves (De Morgan), where it becomes the complementary spans
//     of the same field plus the chunks that lack the field (a missing field matches only under
//     `not`), so a selective `not` narrows as well as its positive form;
//   - and intersects the children that narrow, or unions them under `not`; or unions its
//     children when every one narrows;
//   - the ACL is the union of the lists of the reader's principal and groups;
// and filter and ACL are intersected. Every step stops as soon as its lists hold more than the
// caller's `limit` ids: a loose filter costs a few list sizes, not a walk over its ids.
//
// The result is EXACT (the ids the filter and the ACL admit, no more) unless a child of an
// `and` was too wide to narrow within the limit, in which case it is a superset and says so.
// Callers that check admission before scoring may skip the check on an exact result.
//
// Memory: per chunk, 8 bytes per metadata field (its value's list) plus 8 (the field's list of
// chunks that carry it), 8 per ACL name and 8 in the list of every chunk; per distinct value a
// map node with the value.
//
// Thread safety: not synchronized (like LexicalIndex): Index holds its shared lock for
// candidates() and its exclusive lock for add() and remove().

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "retrieval/candidate_list.h"
#include "retrieval/filter.h"
#include "retrieval/types.h"

namespace sluice::retrieval {

class FilterPostings {
public:
    // Indexes a chunk under every metadata value and ACL name it carries.
    void add(std::uint64_t id, const Metadata& metadata, const Acl& acl);
    // Forgets a chunk; `metadata` and `acl` must be those it was added with.
    void remove(std::uint64_t id, const Metadata& metadata, const Acl& acl);

    // The chunks that the filter and the reader's ACL admit (or a superset, see above; `exact`
    // says which), or nullopt when neither narrows the search to at most `limit` ids (the
    // caller then plans without them).
    std::optional<CandidateList> candidates(const Filter& filter, const Reader& reader,
                                            std::size_t limit) const;
    // candidates() for one search, as VectorIndex::search asks for them. Borrows this object,
    // `filter` and `reader`: the source must not outlive any of them, nor a write to this.
    CandidateSource source(const Filter& filter, const Reader& reader) const;

    // Distinct (field, value) and ACL-name lists.
    std::size_t lists() const;
    std::size_t chunks() const { return all_.size(); }
    // Approximate heap bytes held.
    std::size_t memory_bytes() const;

    using Ids = std::vector<std::uint64_t>;  // sorted
    struct Field {
        // Integers and floats in one order (2020 and 2020.0 share a list); NaN is kept apart:
        // it has no place in the order.
        std::map<MetaNumber, Ids> numbers;
        std::map<std::string, Ids, std::less<>> texts;
        Ids nan;
        // Booleans are neither numbers nor text: a stored true is not the number 1.
        Ids bool_false;
        Ids bool_true;
        Ids has;  // every chunk that carries the field, whatever its value
    };

private:
    struct Set {
        Ids ids;
        bool exact = true;
    };
    std::optional<Set> evaluate(const Filter& filter, bool negated, std::size_t limit) const;
    std::optional<Set> leaf(const Filter& filter, bool negated, std::size_t limit) const;
    std::optional<Set> combine(const Filter& filter, bool negated, std::size_t limit) const;

    std::unordered_map<std::string, Field> fields_;
    std::unordered_map<std::string, Ids> principals_;
    std::unordered_map<std::string, Ids> groups_;
    Ids all_;
};

}  // namespace sluice::retrieval
