#include "retrieval/filter_postings.h"

#include <algorithm>
#include <cstring>
#include <functional>
#include <string>
#include <string_view>

namespace sluice::retrieval {
namespace {

// Distinct tags keep a field's values apart from ACL names and text apart from numbers.
std::uint64_t hash_key(char tag, std::string_view field, std::string_view value) {
    std::string bytes;
    bytes.reserve(field.size() + value.size() + 2);
    bytes.push_back(tag);
    bytes.append(field);
    bytes.push_back('\x1f');
    bytes.append(value);
    return std::hash<std::string>{}(bytes);
}

std::uint64_t value_key(const std::string& field, const MetaValue& value) {
    if (const auto* text = std::get_if<std::string>(&value)) {
        return hash_key('s', field, *text);
    }
    // Equal numbers must share a list: -0.0 == 0.0 but their bits differ.
    double number = std::get<double>(value);
    if (number == 0) {
        number = 0;
    }
    char bits[sizeof(double)];
    std::memcpy(bits, &number, sizeof(bits));
    return hash_key('n', field, std::string_view(bits, sizeof(bits)));
}

std::uint64_t principal_key(const std::string& name) { return hash_key('p', "", name); }
std::uint64_t group_key(const std::string& name) { return hash_key('g', "", name); }

}  // namespace

void FilterPostings::add_to(std::uint64_t key, std::uint64_t id) {
    auto& ids = lists_[key];
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

void FilterPostings::remove_from(std::uint64_t key, std::uint64_t id) {
    auto found = lists_.find(key);
    if (found == lists_.end()) {
        return;
    }
    auto& ids = found->second;
    auto at = std::lower_bound(ids.begin(), ids.end(), id);
    if (at != ids.end() && *at == id) {
        ids.erase(at);
    }
    if (ids.empty()) {
        lists_.erase(found);
    }
}

void FilterPostings::add(std::uint64_t id, const Metadata& metadata, const Acl& acl) {
    for (const auto& [field, value] : metadata) {
        add_to(value_key(field, value), id);
    }
    for (const auto& principal : acl.principals) {
        add_to(principal_key(principal), id);
    }
    for (const auto& group : acl.groups) {
        add_to(group_key(group), id);
    }
}

void FilterPostings::remove(std::uint64_t id, const Metadata& metadata, const Acl& acl) {
    for (const auto& [field, value] : metadata) {
        remove_from(value_key(field, value), id);
    }
    for (const auto& principal : acl.principals) {
        remove_from(principal_key(principal), id);
    }
    for (const auto& group : acl.groups) {
        remove_from(group_key(group), id);
    }
}

const std::vector<std::uint64_t>* FilterPostings::list(std::uint64_t key) const {
    auto found = lists_.find(key);
    return found == lists_.end() ? nullptr : &found->second;
}

std::optional<FilterPostings::Union> FilterPostings::narrow(const Filter& filter) const {
    switch (filter.op()) {
        case Filter::Op::kEquals:
        case Filter::Op::kIn: {
            Union out;
            for (const auto& value : filter.values()) {
                if (const auto* ids = list(value_key(filter.field(), value))) {
                    out.lists.push_back(ids);
                    out.size += ids->size();
                }
            }
            return out;
        }
        case Filter::Op::kAnd: {
            std::optional<Union> best;
            for (const auto& child : filter.children()) {
                auto narrowed = narrow(child);
                if (narrowed && (!best || narrowed->size < best->size)) {
                    best = std::move(narrowed);
                }
            }
            return best;
        }
        case Filter::Op::kOr: {
            Union out;
            for (const auto& child : filter.children()) {
                auto narrowed = narrow(child);
                if (!narrowed) {
                    return std::nullopt;  // one child may admit anything
                }
                out.lists.insert(out.lists.end(), narrowed->lists.begin(), narrowed->lists.end());
                out.size += narrowed->size;
            }
            return out;
        }
        default:
            return std::nullopt;
    }
}

std::optional<std::vector<std::uint64_t>> FilterPostings::candidates(const Filter& filter,
                                                                     const Reader& reader,
                                                                     std::size_t limit) const {
    std::optional<Union> chosen = narrow(filter);
    Union by_acl;
    if (const auto* ids = list(principal_key(reader.principal))) {
        by_acl.lists.push_back(ids);
        by_acl.size += ids->size();
    }
    for (const auto& group : reader.groups) {
        if (const auto* ids = list(group_key(group))) {
            by_acl.lists.push_back(ids);
            by_acl.size += ids->size();
        }
    }
    if (!chosen || by_acl.size < chosen->size) {
        chosen = std::move(by_acl);
    }
    if (chosen->size > limit) {
        return std::nullopt;
    }
    std::vector<std::uint64_t> out;
    out.reserve(chosen->size);
    for (const auto* ids : chosen->lists) {
        out.insert(out.end(), ids->begin(), ids->end());
    }
    if (chosen->lists.size() > 1) {
        std::sort(out.begin(), out.end());
        out.erase(std::unique(out.begin(), out.end()), out.end());
    }
    return out;
}

std::size_t FilterPostings::memory_bytes() const {
    // A node of the map (key, vector, next pointer, cached hash) per list, plus its ids.
    std::size_t bytes = lists_.bucket_count() * sizeof(void*);
    for (const auto& [key, ids] : lists_) {
        bytes += sizeof(key) + sizeof(ids) + 2 * sizeof(void*) + ids.capacity() * sizeof(ids[0]);
    }
    return bytes;
}

}  // namespace sluice::retrieval
