#pragma once
// Everything an index holds, in a form a test compares with its source exactly: key -> one line
// with the document's text (as its chunks cover it), metadata and ACL.

#include <doctest/doctest.h>

#include <cstddef>
#include <map>
#include <string>
#include <type_traits>
#include <variant>
#include <vector>

#include "retrieval/index.h"

namespace sluice::testing {

// The line for a document: "text=<text>|<name>=<value>...|groups=[g1][g2](p1)(p2)", metadata
// in name order. Numbers print as std::to_string does (2020 for an integer, 2020.000000 for a
// float).
inline std::string document_line(const std::string& text,
                                 const std::map<std::string, std::string>& metadata,
                                 const std::vector<std::string>& groups,
                                 const std::vector<std::string>& principals = {}) {
    std::string line = "text=" + text;
    for (const auto& [name, value] : metadata) {
        line += "|" + name + "=" + value;
    }
    line += "|groups=";
    for (const auto& group : groups) {
        line += "[" + group + "]";
    }
    for (const auto& principal : principals) {
        line += "(" + principal + ")";
    }
    return line;
}

// key -> document_line, read from the index. `visits` counts documents, so that a key held twice
// would show.
inline std::map<std::string, std::string> index_contents(const retrieval::Index& index,
                                                         std::size_t& visits) {
    std::map<std::string, std::string> out;
    visits = 0;
    bool chunks_ok = true;
    REQUIRE(index
                .for_each_document([&](const retrieval::DocumentRecord& record) {
                    ++visits;
                    auto chunks = index.chunks_of(record.key);
                    if (!chunks.ok()) {
                        chunks_ok = false;
                        return false;
                    }
                    // Chunks cover the text in order; each knows where it starts.
                    std::string text;
                    for (const auto& chunk : *chunks) {
                        if (chunk.char_begin <= text.size()) {
                            text = text.substr(0, chunk.char_begin) + chunk.text;
                        } else {
                            text += "<gap>" + chunk.text;
                        }
                    }
                    std::map<std::string, std::string> metadata;
                    for (const auto& [name, value] : record.metadata) {
                        metadata[name] = std::visit(
                            [](const auto& v) -> std::string {
                                if constexpr (std::is_same_v<std::decay_t<decltype(v)>,
                                                             std::string>) {
                                    return v;
                                } else {
                                    return std::to_string(v);
                                }
                            },
                            value);
                    }
                    out[record.key] =
                        document_line(text, metadata, record.acl.groups, record.acl.principals);
                    return true;
                })
                .ok());
    REQUIRE(chunks_ok);
    return out;
}

// The first few differences, for a readable failure.
inline std::string differences(const std::map<std::string, std::string>& want,
                               const std::map<std::string, std::string>& have) {
    std::string out;
    int shown = 0;
    for (const auto& [key, value] : want) {
        auto found = have.find(key);
        if (found == have.end()) {
            out += "missing " + key + "\n";
        } else if (found->second != value) {
            out += "differs " + key + ": want '" + value + "', have '" + found->second + "'\n";
        } else {
            continue;
        }
        if (++shown == 5) {
            return out;
        }
    }
    for (const auto& [key, value] : have) {
        if (!want.contains(key)) {
            out += "extra " + key + "\n";
            if (++shown == 5) {
                return out;
            }
        }
    }
    return out;
}

// Checks that the index holds exactly `want`, each key once.
inline void check_index_holds(const retrieval::Index& index,
                              const std::map<std::string, std::string>& want) {
    std::size_t visits = 0;
    const auto have = index_contents(index, visits);
    CHECK(visits == have.size());
    CHECK(have.size() == want.size());
    CHECK_MESSAGE(have == want, differences(want, have));
}

}  // namespace sluice::testing
