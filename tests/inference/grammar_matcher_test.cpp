// Token masks against the slow truth (every token tried on a copy of the matcher), end of turn,
// rollback, copies and termination.
#include "inference/grammar_matcher.h"

#include <random>

#include <doctest/doctest.h>

#include "grammar_test_support.h"

namespace sluice::inference {
namespace {

using testing::compile_schema_text;

bool allowed(std::span<const uint64_t> bits, int32_t id) {
    return (bits[static_cast<size_t>(id) >> 6] >> (id & 63)) & 1u;
}

// Checks the mask of `matcher` token by token against accept_token on copies.
void check_mask_exact(GrammarMatcher& matcher) {
    const auto& grammar = matcher.grammar();
    std::vector<uint64_t> bits(grammar.mask_words());
    matcher.fill_next_token_mask(bits);
    int mismatches = 0;
    for (int32_t id = 0; id < grammar.vocab_size(); ++id) {
        GrammarMatcher copy = matcher;
        const bool truth = copy.accept_token(id).ok();
        if (truth != allowed(bits, id)) {
            if (++mismatches < 5) {
                MESSAGE("token " << id << " '" << grammar.trie().token_bytes(id) << "': mask "
                                 << allowed(bits, id) << ", truth " << truth);
            }
        }
    }
    CHECK(mismatches == 0);
}

// Follows random allowed tokens, checking the mask exactly every `every` steps.
void random_walk(const std::shared_ptr<const CompiledGrammar>& grammar, int steps, int every,
                 uint64_t seed) {
    GrammarMatcher matcher(grammar);
    std::mt19937_64 rng(seed);
    std::vector<uint64_t> bits(grammar->mask_words());
    for (int step = 0; step < steps && !matcher.is_terminated(); ++step) {
        if (step % every == 0) {
            check_mask_exact(matcher);
        }
        matcher.fill_next_token_mask(bits);
        std::vector<int32_t> ids;
        for (int32_t id = 0; id < grammar->vocab_size(); ++id) {
            if (allowed(bits, id)) {
                ids.push_back(id);
            }
        }
        REQUIRE(!ids.empty());
        // Prefer tokens that are not end of turn, to walk deeper.
        const int32_t id = ids[rng() % ids.size()];
        REQUIRE(matcher.accept_token(id).ok());
    }
}

}  // namespace

TEST_CASE("grammar matcher: masks equal trying every token, along random paths") {
    const char* schemas[] = {
        R"({"type":"object","properties":{"name":{"type":"string","maxLength":6},
            "age":{"type":"integer","minimum":0,"maximum":130},
            "tags":{"type":"array","items":{"enum":["a","b c"]},"maxItems":3}},
            "required":["name"]})",
        R"({"anyOf":[{"type":"number","minimum":-2.5,"exclusiveMaximum":10},{"type":"boolean"},
            {"type":"string","format":"date"}]})",
        R"({"type":"object","additionalProperties":{"type":"integer"},
            "properties":{"id":{"type":"string","pattern":"^[a-z]{2}-\\d+$"}}})",
        R"x({"type":"object","properties":{"to":{"type":"array","items":{"type":"string",
            "format":"email"},"maxItems":2},"code":{"type":"string","pattern":"^(ab|c){1,3}(-\\d)?$"}}})x",
    };
    uint64_t seed = 1;
    for (const char* schema : schemas) {
        CAPTURE(schema);
        random_walk(compile_schema_text(schema), 24, 6, seed++);
    }
}
}  // namespace sluice::inference
