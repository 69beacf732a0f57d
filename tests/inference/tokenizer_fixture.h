#pragma once
// Shared by the tokenizer tests: the shipped cl100k_base tokenizer, loaded once, and JSONL
// helpers for case files.

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "inference/tokenizer.h"
#include "inference/tokenizer_files.h"

namespace sluice::inference::testing {

inline std::filesystem::path shipped_ranks_path() {
    return std::filesystem::path(SLUICE_SOURCE_DIR) / "inference/assets/cl100k_base.tiktoken";
}

// The DBRX tokenizer over the shipped ranks; aborts the test run when it cannot load, since
// every tokenizer test depends on it.
inline const Tokenizer& dbrx_tokenizer() {
    static const std::unique_ptr<Tokenizer> tokenizer = [] {
        auto opened = open_dbrx_tiktoken(shipped_ranks_path());
        if (!opened) {
            FAIL("cannot open the shipped tokenizer: " << opened.status().to_string());
        }
        return std::move(*opened);
    }();
    return *tokenizer;
}

struct TokenizerCase {
    std::string group;
    std::string text;
    std::vector<TokenId> ids;
};

// Reads {"group","text","ids"} lines; an empty list when the file does not exist.
inline std::vector<TokenizerCase> read_cases(const std::filesystem::path& path) {
    std::vector<TokenizerCase> cases;
    std::ifstream in(path);
    std::string line;
    while (std::getline(in, line)) {
        if (line.empty()) {
            continue;
        }
        auto doc = nlohmann::json::parse(line);
        cases.push_back({doc.value("group", ""), doc.at("text").get<std::string>(),
                         doc.at("ids").get<std::vector<TokenId>>()});
    }
    return cases;
}

// Printable form of a string for failure messages: escapes control characters, cut at 120 bytes.
inline std::string shown(const std::string& text) {
    std::string out = nlohmann::json(text.substr(0, 120)).dump(
        -1, ' ', false, nlohmann::json::error_handler_t::replace);
    return text.size() > 120 ? out + "..." : out;
}

}  // namespace sluice::inference::testing
