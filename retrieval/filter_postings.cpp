#include "retrieval/filter_postings.h"

#include <algorithm>

#include "retrieval/detail/value_spans.h"

namespace sluice::retrieval {
namespace {

using Ids = FilterPostings::Ids;

// How far past the limit the children of an `and` may go (their lists are copied and
// intersected: a few hundred microseconds per 100,000 ids).
constexpr std::size_t kAndWiden = 4;
using detail::Interval;

void insert_id(Ids& ids, std::uint64_t id) {
    // Chunk ids grow with every write, so an append keeps the list sorted; the general case
    // (a restore in another order) inserts in place.
    if (ids.empty() || ids.back() < id) {
        ids.push_back(id);
        return;
    }
    auto at = std::lower_bound(ids.begin(), ids.end(), id);
    if (at == ids.end() || *at != id) {
        ids.insert(at, id);
    }
}

void erase_id(Ids& ids, std::uint64_t id) {
    auto at = std::lower_bound(ids.begin(), ids.end(), id);
    if (at != ids.end() && *at == id) {
        ids.erase(at);
    }
}

// Removes `id` from the list under `key` and drops the list when it empties.
template <typename Map, typename Key>
void erase_from(Map& map, const Key& key, std::uint64_t id) {
    auto found = map.find(key);
    if (found == map.end()) {
        return;
    }
    erase_id(found->second, id);
    if (found->second.empty()) {
        map.erase(found);
    }
}

// The lists that a union gathers, with their total size; `over` once that passed the limit.
struct Gathered {
    std::vector<const Ids*> lists;
    std::size_t size = 0;
    bool over = false;

    void add(const Ids& ids, std::size_t limit) {
        if (ids.empty() || over) {
            return;
        }
        lists.push_back(&ids);
        size += ids.size();
        over = size > limit;
    }
};

// The lists of the values of `map` inside `interval`, until they pass the limit.
template <typename Map, typename T>
void gather(const Map& map, const Interval<T>& interval, std::size_t limit, Gathered& out) {
    auto it = map.begin();
    if (interval.lower) {
        it = interval.lower->inclusive ? map.lower_bound(interval.lower->value)
                                       : map.upper_bound(interval.lower->value);
    }
    for (; it != map.end() && !out.over; ++it) {
        if (interval.upper) {
            const auto& upper = *interval.upper;
            if (upper.value < it->first || (!(it->first < upper.value) && !upper.inclusive)) {
                break;
            }
        }
        out.add(it->second, limit);
    }
}

Ids merge_lists(const std::vector<const Ids*>& lists) {
    if (lists.size() == 1) {
        return *lists.front();
    }
    Ids out;
    std::size_t size = 0;
    for (const auto* ids : lists) {
        size += ids->size();
    }
    out.reserve(size);
    for (const auto* ids : lists) {
        out.insert(out.end(), ids->begin(), ids->end());
    }
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
    return out;
}

Ids intersect(const Ids& a, const Ids& b) {
    Ids out;
    out.reserve(std::min(a.size(), b.size()));
    std::set_intersection(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(out));
    return out;
}

// The first position at or after `from` whose id is not below `id`: a gallop, then a binary
// search, so that walking a short sorted list through a long one costs O(short * log(gap)).
Ids::const_iterator gallop(Ids::const_iterator from, Ids::const_iterator end, std::uint64_t id) {
    std::size_t step = 1;
    auto low = from;
    while (low != end) {
        std::size_t left = static_cast<std::size_t>(end - low);
        auto probe = low + static_cast<std::ptrdiff_t>(std::min(step, left) - 1);
        if (*probe >= id) {
            return std::lower_bound(low, probe + 1, id);
        }
        low = probe + 1;
        step *= 2;
    }
    return end;
}

// Keeps the ids that at least one of `lists` holds (the reader's ACL lists when their union is
// too long to build).
Ids keep_members(const Ids& ids, const std::vector<const Ids*>& lists) {
    std::vector<Ids::const_iterator> at;
    for (const auto* list : lists) {
        at.push_back(list->begin());
    }
    Ids out;
    out.reserve(ids.size());
    for (std::uint64_t id : ids) {
        for (std::size_t l = 0; l < lists.size(); ++l) {
            at[l] = gallop(at[l], lists[l]->end(), id);
            if (at[l] != lists[l]->end() && *at[l] == id) {
                out.push_back(id);
                break;
            }
        }
    }
    return out;
}

}  // namespace

void FilterPostings::add(std::uint64_t id, const Metadata& metadata, const Acl& acl) {
    insert_id(all_, id);
    for (const auto& [name, value] : metadata) {
        Field& field = fields_[name];
        insert_id(field.has, id);
        if (const auto* text = std::get_if<std::string>(&value)) {
            insert_id(field.texts[*text], id);
        } else if (const auto* flag = std::get_if<bool>(&value)) {
            insert_id(*flag ? field.bool_true : field.bool_false, id);
        } else if (auto number = number_of(value)) {
            // -0.0, 0.0 and the integer 0 are one key of the map (none is less than another),
            // as 2020 and 2020.0 are: a filter admits both.
            insert_id(field.numbers[*number], id);
        } else {
            insert_id(field.nan, id);
        }
    }
    for (const auto& principal : acl.principals) {
        insert_id(principals_[principal], id);
    }
    for (const auto& group : acl.groups) {
        insert_id(groups_[group], id);
    }
}

void FilterPostings::remove(std::uint64_t id, const Metadata& metadata, const Acl& acl) {
    erase_id(all_, id);
    for (const auto& [name, value] : metadata) {
        auto found = fields_.find(name);
        if (found == fields_.end()) {
            continue;
        }
        Field& field = found->second;
        erase_id(field.has, id);
        if (const auto* text = std::get_if<std::string>(&value)) {
            erase_from(field.texts, *text, id);
        } else if (const auto* flag = std::get_if<bool>(&value)) {
            erase_id(*flag ? field.bool_true : field.bool_false, id);
        } else if (auto number = number_of(value)) {
            erase_from(field.numbers, *number, id);
        } else {
            erase_id(field.nan, id);
        }
        if (field.has.empty()) {
            fields_.erase(found);
        }
    }
    for (const auto& principal : acl.principals) {
        erase_from(principals_, principal, id);
    }
    for (const auto& group : acl.groups) {
        erase_from(groups_, group, id);
    }
}

std::optional<FilterPostings::Set> FilterPostings::leaf(const Filter& filter, bool negated,
                                                        std::size_t limit) const {
    detail::ValueSpans spans = detail::leaf_spans(filter);
    auto found = fields_.find(filter.field());
    if (negated) {
        spans = detail::complement(spans);
    }
    Gathered gathered;
    Ids missing;
    if (negated) {
        // A chunk without the field matches every negated leaf on it.
        std::size_t carry = found == fields_.end() ? 0 : found->second.has.size();
        if (all_.size() - carry > limit) {
            return std::nullopt;
        }
        if (found == fields_.end()) {
            missing = all_;
        } else if (carry < all_.size()) {
            std::set_difference(all_.begin(), all_.end(), found->second.has.begin(),
                                found->second.has.end(), std::back_inserter(missing));
        }
        gathered.add(missing, limit);
    }
    if (found != fields_.end()) {
        const Field& field = found->second;
        for (const auto& interval : spans.numbers) {
            gather(field.numbers, interval, limit, gathered);
        }
        for (const auto& interval : spans.texts) {
            gather(field.texts, interval, limit, gathered);
        }
        if (spans.nan) {
            gathered.add(field.nan, limit);
        }
        if (spans.bool_false) {
            gathered.add(field.bool_false, limit);
        }
        if (spans.bool_true) {
            gathered.add(field.bool_true, limit);
        }
    }
    if (gathered.over) {
        return std::nullopt;
    }
    Set out;
    if (!gathered.lists.empty()) {
        out.ids = merge_lists(gathered.lists);
    }
    return out;
}

std::optional<FilterPostings::Set> FilterPostings::combine(const Filter& filter, bool negated,
                                                           std::size_t limit) const {
    // Under `not`, and becomes or and or becomes and (De Morgan).
    const bool conjunction = (filter.op() == Filter::Op::kAnd) != negated;
    std::vector<Set> parts;
    bool exact = true;
    if (conjunction) {
        // Every child that narrows bounds the result; one that does not leaves it a superset.
        // Children may each pass the limit while their intersection does not (two 10% ranges
        // meet in 1%): they get kAndWiden times the limit, the result is checked against it.
        const std::size_t widened =
            limit > all_.size() / kAndWiden ? std::max(limit, all_.size()) : limit * kAndWiden;
        for (const auto& child : filter.children()) {
            auto part = evaluate(child, negated, widened);
            if (!part) {
                exact = false;
                continue;
            }
            exact = exact && part->exact;
            parts.push_back(std::move(*part));
        }
        if (parts.empty()) {
            return std::nullopt;
        }
        std::sort(parts.begin(), parts.end(),
                  [](const Set& a, const Set& b) { return a.ids.size() < b.ids.size(); });
        Set out{std::move(parts.front().ids), exact};
        for (std::size_t i = 1; i < parts.size() && !out.ids.empty(); ++i) {
            out.ids = intersect(out.ids, parts[i].ids);
        }
        if (out.ids.size() > limit) {
            return std::nullopt;
        }
        return out;
    }
    // A union narrows only when every child does and their union is within the limit (the
    // children may overlap, so their sizes only bound it from above).
    std::vector<const Ids*> lists;
    std::size_t sum = 0;
    for (const auto& child : filter.children()) {
        auto part = evaluate(child, negated, limit);
        if (!part) {
            return std::nullopt;
        }
        sum += part->ids.size();
        exact = exact && part->exact;
        parts.push_back(std::move(*part));
    }
    for (const auto& part : parts) {
        if (!part.ids.empty()) {
            lists.push_back(&part.ids);
        }
    }
    Set out{lists.empty() ? Ids{} : merge_lists(lists), exact};
    if (sum > limit && out.ids.size() > limit) {
        return std::nullopt;
    }
    return out;
}

std::optional<FilterPostings::Set> FilterPostings::evaluate(const Filter& filter, bool negated,
                                                            std::size_t limit) const {
    switch (filter.op()) {
        case Filter::Op::kAll:
            // "everything" narrows nothing; its negation admits nothing.
            return negated ? std::optional<Set>(Set{}) : std::nullopt;
        case Filter::Op::kNot:
            return evaluate(filter.children().front(), !negated, limit);
        case Filter::Op::kAnd:
        case Filter::Op::kOr:
            return combine(filter, negated, limit);
        default:
            return leaf(filter, negated, limit);
    }
}

std::optional<CandidateList> FilterPostings::candidates(const Filter& filter, const Reader& reader,
                                                        std::size_t limit) const {
    Gathered acl;
    auto add_list = [&](const std::unordered_map<std::string, Ids>& lists,
                        const std::string& name) {
        auto found = lists.find(name);
        if (found != lists.end()) {
            acl.lists.push_back(&found->second);
            acl.size += found->second.size();
        }
    };
    add_list(principals_, reader.principal);
    for (const auto& group : reader.groups) {
        add_list(groups_, group);
    }
    std::optional<Set> by_filter = evaluate(filter, false, limit);
    if (!by_filter) {
        if (acl.size > limit) {
            return std::nullopt;
        }
        // The reader's chunks: exact when the filter admits everything.
        return CandidateList{acl.lists.empty() ? Ids{} : merge_lists(acl.lists),
                             acl.lists.empty() || filter.matches_all()};
    }
    if (acl.lists.empty()) {
        return CandidateList{{}, true};  // the reader may read nothing
    }
    for (const auto* list : acl.lists) {
        if (list->size() == all_.size()) {
            return CandidateList{std::move(by_filter->ids), by_filter->exact};  // reads everything
        }
    }
    if (acl.size <= by_filter->ids.size()) {
        return CandidateList{intersect(by_filter->ids, merge_lists(acl.lists)), by_filter->exact};
    }
    return CandidateList{keep_members(by_filter->ids, acl.lists), by_filter->exact};
}

CandidateSource FilterPostings::source(const Filter& filter, const Reader& reader) const {
    return
        [this, &filter, &reader](std::size_t limit) { return candidates(filter, reader, limit); };
}

std::size_t FilterPostings::lists() const {
    std::size_t count = principals_.size() + groups_.size();
    for (const auto& [name, field] : fields_) {
        count += field.numbers.size() + field.texts.size() + (field.nan.empty() ? 0 : 1) +
                 (field.bool_false.empty() ? 0 : 1) + (field.bool_true.empty() ? 0 : 1);
    }
    return count;
}

std::size_t FilterPostings::memory_bytes() const {
    // A red-black node holds three pointers and a colour beside its key and value; a hash node
    // a next pointer and the cached hash.
    constexpr std::size_t kTreeNode = 4 * sizeof(void*);
    constexpr std::size_t kHashNode = 2 * sizeof(void*);
    auto ids_bytes = [](const Ids& ids) { return sizeof(Ids) + ids.capacity() * sizeof(ids[0]); };
    std::size_t bytes = ids_bytes(all_);
    for (const auto* acl : {&principals_, &groups_}) {
        bytes += acl->bucket_count() * sizeof(void*);
        for (const auto& [name, ids] : *acl) {
            bytes += kHashNode + sizeof(name) + name.capacity() + ids_bytes(ids);
        }
    }
    bytes += fields_.bucket_count() * sizeof(void*);
    for (const auto& [name, field] : fields_) {
        bytes += kHashNode + sizeof(name) + name.capacity() + sizeof(Field) + ids_bytes(field.has) +
                 ids_bytes(field.nan) + ids_bytes(field.bool_false) + ids_bytes(field.bool_true);
        for (const auto& [value, ids] : field.numbers) {
            bytes += kTreeNode + sizeof(value) + ids_bytes(ids);
        }
        for (const auto& [value, ids] : field.texts) {
            bytes += kTreeNode + sizeof(value) + value.capacity() + ids_bytes(ids);
        }
    }
    return bytes;
}

}  // namespace sluice::retrieval
